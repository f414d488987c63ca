from __future__ import annotations

import json

from tollway.recording.emitter import MARKER
from tollway.recording.events import from_context
from tollway.usage.replay import replay, unsent_events


class RecordingSqs:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803
        self.bodies += [e["MessageBody"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_replay_reads_prefixed_log_lines_and_skips_others(exchange, response):
    events = [from_context(exchange, response, 1) for _ in range(12)]
    lines = ["START RequestId: 1", '{"level": "INFO", "message": "access"}']
    lines += [f"2026-11-27T00:00:00Z\tabc\t{json.dumps({MARKER: True, 'usage_event': e})}" for e in events]
    lines.append(lines[-1])  # the same event logged twice
    lines.append(json.dumps({MARKER: True, "usage_event": {"version": 1}}))
    lines.append(json.dumps({MARKER: False, "usage_event": events[0]}))
    sqs = RecordingSqs()
    result = replay(lines, sqs, "q")
    assert (result.found, result.sent, result.invalid, result.failed) == (13, 12, 1, [])
    assert [json.loads(b)["event_id"] for b in sqs.bodies] == [e["event_id"] for e in events]
    assert sum(1 for e in unsent_events(lines) if e is not None) == 13


class DownSqs:
    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803
        raise ConnectionError("refused")


def test_a_logged_message_is_replayed_as_that_message_and_a_partial_one_is_not(exchange, response):
    import io

    from tollway.recording.emitter import UnsentLog, UsageEmitter

    log = io.StringIO()
    emitter = UsageEmitter(DownSqs(), "q", unsent=UnsentLog(log), max_events=3)
    for _ in range(5):
        emitter.record(exchange, response, 1.0)
    emitter.flush()  # two messages (3 + 2 events) fail: each event logged with its message
    lines = log.getvalue().splitlines()
    assert len(lines) == 5
    sqs = RecordingSqs()
    result = replay(lines + lines[:2], sqs, "q")  # lines repeated in the log are harmless
    sent = [json.loads(b) for b in sqs.bodies]
    assert [(m["producer"], m["seq"], len(m["events"])) for m in sent] == [
        (emitter.producer, 0, 3),
        (emitter.producer, 1, 2),
    ]
    assert (result.found, result.sent, result.incomplete) == (7, 5, [])

    sqs = RecordingSqs()
    cut = replay(lines[1:], sqs, "q")  # the first line of message 0 is missing
    assert [json.loads(b)["seq"] for b in sqs.bodies] == [1]
    assert (cut.sent, cut.incomplete, cut.incomplete_events) == (2, [f"{emitter.producer}/0"], 2)
