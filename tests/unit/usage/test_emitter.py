from __future__ import annotations

import io
import json
import time
from typing import Any

from tollway.recording.emitter import UnsentLog, UsageEmitter
from tollway.usage.events import MAX_EVENTS, UsageMessage
from tollway.usage.replay import unsent_events


class FakeSqs:
    """SendMessageBatch that succeeds, raises, or refuses some entries, as told."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.down = False
        self.refuse: dict[int, bool] = {}  # entry index -> SenderFault

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        if self.down:
            raise ConnectionError("refused")
        failed = [
            {"Id": e["Id"], "SenderFault": self.refuse[i], "Code": "X"}
            for i, e in enumerate(Entries)
            if i in self.refuse
        ]
        ok = [{"Id": e["Id"]} for i, e in enumerate(Entries) if i not in self.refuse]
        return {"Successful": ok, "Failed": failed}


def emitter(sqs: FakeSqs, log: io.StringIO, **kwargs: Any) -> UsageEmitter:
    return UsageEmitter(sqs, "q", unsent=UnsentLog(log), **kwargs)


def logged(log: io.StringIO) -> list[dict[str, Any]]:
    return [e for e in unsent_events(log.getvalue().splitlines()) if e is not None]


def test_record_is_cheap_and_sends_nothing(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    e = emitter(sqs, log)
    started = time.perf_counter()
    for _ in range(1000):
        e.record(exchange, response, 1.0)
    per_call_us = (time.perf_counter() - started) * 1000
    assert sqs.calls == [] and e.pending() == 1000
    assert per_call_us < 500  # a round trip to any SQS would be milliseconds


def test_flush_sends_ten_per_call(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    e = emitter(sqs, log, max_events=1)
    for _ in range(25):
        e.record(exchange, response, 1.0)
    stats = e.flush()
    assert [len(c) for c in sqs.calls] == [10, 10, 5]
    assert (stats.sent, stats.messages, stats.calls, e.pending()) == (25, 25, 3, 0)
    assert json.loads(sqs.calls[0][0]["MessageBody"])["events"][0]["consumer_id"] == "acme"


def bodies(sqs: FakeSqs) -> list[dict[str, Any]]:
    return [json.loads(entry["MessageBody"]) for call in sqs.calls for entry in call]


def test_a_flush_packs_events_into_numbered_messages_of_one_producer(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    e = emitter(sqs, log)
    for _ in range(MAX_EVENTS * 2 + 5):
        e.record(exchange, response, 1.0)
    e.flush()
    e.record(exchange, response, 1.0)
    e.flush()
    messages = [UsageMessage.model_validate(b) for b in bodies(sqs)]
    assert [len(m.events) for m in messages] == [MAX_EVENTS, MAX_EVENTS, 5, 1]
    assert [m.seq for m in messages] == [0, 1, 2, 3]
    assert {m.producer for m in messages} == {e.producer}
    assert len({ev.event_id for m in messages for ev in m.events}) == MAX_EVENTS * 2 + 6
    assert emitter(FakeSqs(), log).producer is None  # made at the first flush, one per container
    other = emitter(FakeSqs(), log)
    other.record(exchange, response, 1.0)
    other.flush()
    assert other.producer not in (None, e.producer)


def test_failed_events_are_logged_once_kept_and_retried(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    e = emitter(sqs, log, max_failures=3, max_events=1)
    for _ in range(15):
        e.record(exchange, response, 1.0)
    sqs.down = True
    assert e.flush().failed == 15
    assert len(sqs.calls) == 1  # the endpoint is down: no call per remaining chunk
    assert e.pending() == 15 and len(logged(log)) == 15
    e.flush()
    assert len(logged(log)) == 15  # not logged again
    sqs.down = False
    assert e.flush().sent == 15 and e.pending() == 0
    # Sent again as the very same messages: same numbers, same events.
    failed_first = {x["MessageBody"] for x in sqs.calls[0]}
    assert failed_first <= {x["MessageBody"] for call in sqs.calls[-2:] for x in call}


def test_after_max_failures_events_leave_memory_but_are_in_the_log(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    e = emitter(sqs, log, max_failures=2)
    e.record(exchange, response, 1.0)
    sqs.down = True
    e.flush()
    assert e.flush().dropped == 1 and e.pending() == 0
    assert len(logged(log)) == 1


def test_refused_entries_are_logged_not_retried_and_others_retried(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    sqs.refuse = {0: True, 1: False}
    e = emitter(sqs, log, max_events=1)
    for _ in range(3):
        e.record(exchange, response, 1.0)
    stats = e.flush()
    assert (stats.sent, stats.failed, e.pending()) == (1, 1, 1)
    assert [json.loads(line)["reason"] for line in log.getvalue().splitlines()] == [
        "refused by SQS: X",
        "send failed; retrying",
    ]


def test_overflow_and_shutdown_go_to_the_log(exchange, response):
    sqs, log = FakeSqs(), io.StringIO()
    sqs.down = True
    e = emitter(sqs, log, max_buffer=3)
    for _ in range(5):
        e.record(exchange, response, 1.0)
    assert e.pending() == 3 and len(logged(log)) == 2
    e.close()
    assert e.pending() == 0 and len({ev["event_id"] for ev in logged(log)}) == 5
