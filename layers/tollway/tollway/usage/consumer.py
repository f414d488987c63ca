"""The UsageFunction's work: an SQS batch of usage messages -> Ledger, with partial failures
(its Lambda adapter, which builds this for a container: tollway.functions.usage).

The whole batch is recorded together (billing.Ledger.record_batch: one transaction per
consumer and day, not per event). A malformed message is logged and reported as a batch
item failure, so SQS redelivers only it and, after the queue's maxReceiveCount, moves it to
the DLQ, while its batch-mates are recorded; so is a message whose transaction could not
be committed (redelivered: recording it again is harmless). Two copies of one message in a
batch are recorded once and both reported done.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from tollway.observability import logger
from tollway.usage.billing import BatchResult, MessageKey
from tollway.usage.events import UsageEvent, UsageMessage


class MalformedEvent(ValueError):
    """A message that is not usage; retrying cannot fix it."""


class Recorder(Protocol):
    def record_batch(self, messages: dict[MessageKey, list[UsageEvent]]) -> BatchResult: ...


def parse(body: str) -> tuple[MessageKey, list[UsageEvent]]:
    """A message's identity and events: a `UsageMessage`, or one bare `UsageEvent`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedEvent("body: not JSON") from None
    try:
        if isinstance(data, dict) and "events" in data:
            message = UsageMessage.model_validate(data)
            return MessageKey(message.producer, message.seq), list(message.events)
        event = UsageEvent.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise MalformedEvent(problems) from None
    return MessageKey.of_event(event.event_id), [event]


class UsageConsumer:
    def __init__(self, ledger: Recorder) -> None:
        self.ledger = ledger

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        failures: list[str] = []
        keys: dict[str, MessageKey] = {}
        messages: dict[MessageKey, list[UsageEvent]] = {}
        for record in event.get("Records", []):
            message_id = record["messageId"]
            try:
                key, events = parse(record["body"])
            except MalformedEvent as exc:
                logger.error(
                    "malformed usage event",
                    extra={
                        "message_id": message_id,
                        "receive_count": record.get("attributes", {}).get("ApproximateReceiveCount"),
                        "problem": str(exc)[:500],
                    },
                )
                failures.append(message_id)
                continue
            keys[message_id] = key
            messages.setdefault(key, events)
        if messages:
            try:
                result = self.ledger.record_batch(messages)
                failed = result.failed
            except Exception:
                # Nothing of a failed transaction was written, and what was is deduplicated:
                # every message is delivered again.
                logger.exception("usage batch failed; its messages will be delivered again")
                failed = set(messages)
            failures += [message_id for message_id, key in keys.items() if key in failed]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
