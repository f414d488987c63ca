"""`tollway openapi` on gRPC routes: request and answer schemas derived from the messages."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
from google.protobuf import json_format
from openapi_spec_validator import validate
from tollway.config.compile import compile_infra
from tollway.openapi import document

from tests.grpc_backends import message_class, thing
from tests.unit.config.test_grpc_check import GOOD, infra_with

ROUTES = GOOD + """\
  - id: thing.create
    path: /v1/new-things
    methods: [POST]
    auth: [api_key]
    backends:
      - {name: thing, service: things, grpc: tollway.test.v1.Things/Create}
  - id: things.stream
    path: /v1/stream
    methods: [GET]
    auth: [api_key]
    backends:
      - {name: things, service: things, grpc: tollway.test.v1.Things/List}
"""


def doc(tmp_path: Path) -> dict:
    return document(compile_infra(infra_with(tmp_path, ROUTES), "dev", {}))


def schema_of(document_: dict, schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": document_["components"]})


def test_the_document_is_valid_openapi(tmp_path: Path) -> None:
    validate(doc(tmp_path))


def test_a_unary_route_documents_its_reply_and_the_services_statuses(tmp_path: Path) -> None:
    d = doc(tmp_path)
    op = d["paths"]["/v1/things/{id}"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/tollway.test.v1.Thing"
    }
    assert {"400", "401", "403", "404", "409", "429", "502", "504"} <= set(op["responses"])
    thing_schema = d["components"]["schemas"]["tollway.test.v1.Thing"]
    assert thing_schema["properties"]["displayName"] == {"type": "string"}
    assert thing_schema["properties"]["big"]["type"] == "string"  # int64 answers are strings
    assert thing_schema["properties"]["child"] == {"$ref": "#/components/schemas/tollway.test.v1.Thing"}
    assert thing_schema["properties"]["at"] == {"type": "string", "format": "date-time"}


def test_the_schemas_accept_what_the_gateway_reads_and_writes(tmp_path: Path) -> None:
    d = doc(tmp_path)
    op = d["paths"]["/v1/new-things"]["post"]
    request = schema_of(d, op["requestBody"]["content"]["application/json"]["schema"])
    ok = d["paths"]["/v1/things/{id}"]["get"]["responses"]["200"]
    answer = schema_of(d, ok["content"]["application/json"]["schema"])
    body = {"id": "a", "big": 5, "ubig": "18446744073709551615", "kind": "GADGET", "counts": {"x": "1"},
            "child": {"displayName": "c", "tags": ["t"]}, "at": "2026-12-07T10:00:00Z", "extra": {"a": [1]},
            "maybe": "3", "ratio": "NaN"}  # fmt: skip
    assert not list(request.iter_errors(body))
    assert list(request.iter_errors({"nope": 1}))  # unknown fields are refused, as the gateway does
    canonical = json_format.MessageToDict(message_class("Thing").FromString(thing(**body)))
    assert not list(answer.iter_errors(orjson.loads(orjson.dumps(canonical))))


def test_a_streaming_route_documents_an_array_and_an_event_stream(tmp_path: Path) -> None:
    d = doc(tmp_path)
    content = d["paths"]["/v1/stream"]["get"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"]["type"] == "array"
    assert "text/event-stream" in content
    # A composed route documents each gRPC backend's answer under its name.
    group = d["paths"]["/v1/things"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert group["properties"]["list"]["type"] == "array" and group["properties"]["user"] == {}
