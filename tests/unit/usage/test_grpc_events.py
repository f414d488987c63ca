"""A gRPC backend's entry in the usage event: the HTTP status its status maps to, and the
status by name; HTTP backends' entries stay as they were."""

from __future__ import annotations

import json

import jsonschema
import pytest
from tollway.core.context import BackendOutcome
from tollway.recording.events import from_context
from tollway.usage import schema
from tollway.usage.consumer import MalformedEvent, parse
from tollway.usage.events import UsageEvent

from tests.conftest import ROOT


def test_a_grpc_backend_carries_its_status_by_name(exchange, response) -> None:
    exchange.backends.append(BackendOutcome("item", 404, 2.5, "NOT_FOUND"))
    event = from_context(exchange, response, 5.0)
    assert event["backends"] == [
        {"name": "user", "status": 200, "latency_ms": 3.25},
        {"name": "item", "status": 404, "latency_ms": 2.5, "grpc_status": "NOT_FOUND"},
    ]
    UsageEvent.model_validate(event)
    jsonschema.validate(event, json.loads((ROOT / "schemas" / schema.NAME).read_text()))


def test_a_grpc_status_that_is_no_code_is_a_malformed_event(exchange, response) -> None:
    exchange.backends.append(BackendOutcome("item", 200, 1.0, "FINE"))
    with pytest.raises(MalformedEvent):
        parse(json.dumps(from_context(exchange, response, 1.0)))
