"""Re-send usage events that the emitter wrote to its unsent log (`tollway usage replay FILE`).

Reads any log text: each line's JSON object (after an optional prefix such as the
timestamp and request id of a CloudWatch export) with `"usage_event_unsent": true`.
An event that did reach SQS after it was logged is recognised by its `event_id` and
not counted twice, so replaying a whole log is safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tollway.usage.emitter import BATCH, MARKER
from tollway.usage.events import UsageEvent


@dataclass(slots=True)
class ReplayResult:
    found: int = 0
    sent: int = 0
    invalid: int = 0
    failed: list[str] = field(default_factory=list)  # event ids SQS did not take


def unsent_events(lines: Iterable[str]) -> Iterator[dict[str, Any] | None]:
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
        except ValidationError:
            yield None
            continue
        yield event


def replay(lines: Iterable[str], sqs: Any, queue_url: str) -> ReplayResult:
    result = ReplayResult()
    seen: set[str] = set()
    chunk: list[dict[str, Any]] = []

    def send() -> None:
        entries = [{"Id": str(i), "MessageBody": json.dumps(e)} for i, e in enumerate(chunk)]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        result.sent += len(answer.get("Successful", []))
        result.failed += [chunk[int(f["Id"])]["event_id"] for f in answer.get("Failed", [])]
        chunk.clear()

    for event in unsent_events(lines):
        if event is None:
            result.invalid += 1
            continue
        result.found += 1
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        chunk.append(event)
        if len(chunk) == BATCH:
            send()
    if chunk:
        send()
    return result
