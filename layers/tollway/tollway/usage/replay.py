"""Re-send usage events that the emitter wrote to its unsent log (`tollway usage replay FILE`).

Reads any log text: each line's JSON object (after an optional prefix such as the
timestamp and request id of a CloudWatch export) with `"usage_event_unsent": true`.
Lines that name a message (`usage_message`: producer, number, event count) are put back
together and sent as that same message, so a message that did reach SQS after it was
logged is recognised by its identity and not counted twice; a message some of whose lines
are missing from the input is not sent (sending part of it would mark the whole as
recorded) and is reported. Lines without one (events that never left the router) are sent
as bare events, recognised by their `event_id`. Replaying a whole log twice is safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tollway.recording.emitter import BATCH, MARKER, MAX_CALL_BYTES
from tollway.usage.events import VERSION, UsageEvent


@dataclass(slots=True)
class ReplayResult:
    found: int = 0  # events
    sent: int = 0  # events
    invalid: int = 0
    failed: list[str] = field(default_factory=list)  # event ids SQS did not take
    incomplete: list[str] = field(default_factory=list)  # messages ("producer/seq") not whole
    incomplete_events: int = 0


@dataclass(slots=True)
class Logged:
    event: dict[str, Any]
    message: tuple[str, int, int] | None  # producer, seq, events in the message


def unsent_records(lines: Iterable[str]) -> Iterator[Logged | None]:
    """The logged events, in order; None for a marked line whose event is not valid."""
    for line in lines:
        start = line.find("{")
        if start < 0 or MARKER not in line:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get(MARKER) is not True:
            continue
        event = record.get("usage_event")
        try:
            UsageEvent.model_validate(event)
            message = _identity(record.get("usage_message"))
        except (ValidationError, ValueError, TypeError, KeyError):
            yield None
            continue
        yield Logged(event, message)


def unsent_events(lines: Iterable[str]) -> Iterator[dict[str, Any] | None]:
    for logged in unsent_records(lines):
        yield None if logged is None else logged.event


def _identity(message: Any) -> tuple[str, int, int] | None:
    if message is None:
        return None
    producer, seq, count = message["producer"], message["seq"], message["events"]
    if not isinstance(producer, str) or not isinstance(seq, int) or not isinstance(count, int):
        raise ValueError("usage_message")
    return producer, seq, count


def replay(lines: Iterable[str], sqs: Any, queue_url: str) -> ReplayResult:
    result = ReplayResult()
    bodies: list[tuple[str, list[str]]] = []  # (body, its event ids)
    seen: set[str] = set()
    messages: dict[tuple[str, int], tuple[int, dict[str, dict[str, Any]]]] = {}
    for logged in unsent_records(lines):
        if logged is None:
            result.invalid += 1
            continue
        result.found += 1
        event = logged.event
        if logged.message is None:
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                bodies.append((json.dumps(event), [event["event_id"]]))
            continue
        producer, seq, count = logged.message
        _, events = messages.setdefault((producer, seq), (count, {}))
        events.setdefault(event["event_id"], event)
    for (producer, seq), (count, events) in messages.items():
        if len(events) != count:
            result.incomplete.append(f"{producer}/{seq}")
            result.incomplete_events += len(events)
            continue
        body = {"version": VERSION, "producer": producer, "seq": seq, "events": list(events.values())}
        bodies.append((json.dumps(body), list(events)))
    for chunk in _calls(bodies):
        entries = [{"Id": str(i), "MessageBody": body} for i, (body, _) in enumerate(chunk)]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        result.sent += sum(len(chunk[int(s["Id"])][1]) for s in answer.get("Successful", []))
        result.failed += [eid for f in answer.get("Failed", []) for eid in chunk[int(f["Id"])][1]]
    return result


def _calls(bodies: list[tuple[str, list[str]]]) -> Iterator[list[tuple[str, list[str]]]]:
    chunk: list[tuple[str, list[str]]] = []
    size = 0
    for body in bodies:
        length = len(body[0].encode())
        if chunk and (len(chunk) == BATCH or size + length > MAX_CALL_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(body)
        size += length
    if chunk:
        yield chunk
