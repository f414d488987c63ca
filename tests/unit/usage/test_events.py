from __future__ import annotations

import json

import jsonschema
import pytest
from tollway.recording.events import from_context
from tollway.usage import schema
from tollway.usage.consumer import MalformedEvent, parse
from tollway.usage.events import UsageEvent

from tests.conftest import ROOT

SCHEMA = ROOT / "schemas" / schema.NAME


def test_event_from_an_exchange_has_the_spec_fields_and_no_secret(exchange, response):
    event = from_context(exchange, response, 12.3456)
    assert list(event) == [
        "version", "event_id", "timestamp", "request_id", "consumer_id", "plan", "route_id", "method",
        "status", "latency_ms", "request_bytes", "response_bytes", "cost_units", "admitted", "backends",
        "counted",  # admitted, and no quota counter counted it (the fixture's admission wrote none)
    ]  # fmt: skip
    assert event["counted"] is False
    assert event["version"] == 1 and len(event["event_id"]) == 32
    assert (event["consumer_id"], event["plan"], event["route_id"], event["method"]) == (
        "acme",
        "pro",
        "users.get",
        "GET",
    )
    assert (event["status"], event["latency_ms"], event["request_bytes"], event["response_bytes"]) == (
        200,
        12.346,
        3,
        9,
    )
    assert (event["cost_units"], event["admitted"]) == (1, True)
    assert event["backends"] == [{"name": "user", "status": 200, "latency_ms": 3.25}]
    assert "sekret" not in json.dumps(event)
    assert UsageEvent.model_validate(event).day == event["timestamp"][:10]


def test_every_event_has_its_own_id(exchange, response):
    assert (
        from_context(exchange, response, 1)["event_id"] != from_context(exchange, response, 1)["event_id"]
    )


def test_checked_in_schema_is_current_and_accepts_events(exchange, response):
    assert schema.main([str(SCHEMA.parent), "--check"]) == 0
    document = json.loads(SCHEMA.read_text())
    jsonschema.validate(json.loads(json.dumps(from_context(exchange, response, 1))), document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 2}, document)


def test_stale_schema_is_reported(tmp_path):
    (tmp_path / schema.NAME).write_text("{}")
    assert schema.main([str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"version": 2}', '{"version": 1, "event_id": "x"}'],
)
def test_malformed_bodies_are_refused(body):
    with pytest.raises(MalformedEvent):
        parse(body)


def test_unknown_fields_are_refused(exchange, response):
    event = from_context(exchange, response, 1) | {"api_key": "oops"}
    with pytest.raises(MalformedEvent, match="api_key"):
        parse(json.dumps(event))


def test_a_sent_message_matches_its_checked_in_schema_and_bad_ones_are_refused(exchange, response):
    from tollway.usage.events import MAX_EVENTS

    class Keep:
        bodies: list[str] = []

        def send_message_batch(self, QueueUrl, Entries):  # noqa: N803
            self.bodies += [e["MessageBody"] for e in Entries]
            return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    from tollway.recording.emitter import UsageEmitter

    sqs = Keep()
    emitter = UsageEmitter(sqs, "q")
    emitter.record(exchange, response, 1)
    emitter.flush()
    document = json.loads((SCHEMA.parent / schema.MESSAGE_NAME).read_text())
    message = json.loads(sqs.bodies[0])
    jsonschema.validate(message, document)
    key, events = parse(sqs.bodies[0])
    assert (key.producer, key.seq, [e.event_id for e in events]) == (
        emitter.producer,
        0,
        [message["events"][0]["event_id"]],
    )
    event = message["events"][0]
    for bad in (
        {**message, "events": []},
        {**message, "events": [event] * (MAX_EVENTS + 1)},
        {**message, "producer": "a#b"},
        {**message, "seq": -1},
        {**message, "events": [{**event, "api_key": "oops"}]},
    ):
        with pytest.raises(MalformedEvent):
            parse(json.dumps(bad))
