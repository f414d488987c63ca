"""Buffer usage events on the response path; send them to SQS after it, packed in messages.

`record` costs a few microseconds and makes no AWS call. `flush` runs after the
response: from the Lambda extension thread (tollway.functions.extension) or, under uvicorn,
from `BackgroundFlusher` every ~200 ms. It packs what was recorded since the last flush
into messages of up to `MAX_EVENTS` events (the schema: `tollway.usage.events.UsageMessage`; this
emitter's producer id and the message's number), and sends ten messages per
SendMessageBatch through any object with boto3's `send_message_batch` signature: in the
router, `tollway.aws.sqs.LeanSqs` (a fraction of botocore's CPU per flush); in tools, a
boto3 client. A message whose send fails (the call raises, or SQS lists it as failed)
stays buffered, the same message with the same number, and is sent again on the next
flush: the usage function records a message once however often it arrives.

Never lost: the first time a message fails to send, each of its events is also written to
the unsent log (one JSON line each, `"usage_event_unsent": true`, with the message's
identity), so that a container reaped during an SQS outage loses nothing; `tollway usage
replay` sends such lines again as the same messages. Messages still unsent after
`max_failures` flushes, events pushed out of a full buffer, or left at shutdown are
dropped from memory only once they are in that log. What a process killed outright still
held is billed from the quota counters (tollway.usage.trueup, docs/usage.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from tollway.core.context import Context
from tollway.core.messages import Response
from tollway.recording.events import MAX_EVENTS, VERSION, from_context

MARKER = "usage_event_unsent"
BATCH = 10  # SendMessageBatch's limit
# SendMessageBatch takes at most 256 KB in all; messages stay under 64 KB (one SQS request each).
MAX_CALL_BYTES = 240_000


class UnsentLog:
    """Structured log records of events not (yet) sent; the input of `tollway usage replay`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any], reason: str, message: dict[str, Any] | None = None) -> None:
        record: dict[str, Any] = {
            "level": "ERROR",
            "message": "usage event unsent",
            "service": "tollway",
            MARKER: True,
            "reason": reason,
            "usage_event": event,
        }
        if message is not None:
            record["usage_message"] = message
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(orjson.dumps(record).decode() + "\n")
            stream.flush()


@dataclass(slots=True)
class _Message:
    seq: int
    events: list[dict[str, Any]]
    body: str
    size: int  # bytes
    failures: int = 0
    logged: bool = False


@dataclass(slots=True)
class FlushStats:
    sent: int = 0  # events
    failed: int = 0  # events
    calls: int = 0
    dropped: int = 0  # events
    messages: int = 0  # messages sent


@dataclass(slots=True)
class EmitterStats:
    recorded: int = 0
    sent: int = 0
    calls: int = 0
    logged: int = 0
    messages: int = 0
    flushes: list[FlushStats] = field(default_factory=list)


class UsageEmitter:
    """The router's `UsageRecorder`: buffers events, sends them when told to flush."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        *,
        unsent: UnsentLog | None = None,
        max_buffer: int = 10_000,
        max_failures: int = 3,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.unsent = unsent or UnsentLog()
        self.max_buffer = max_buffer
        self.max_failures = max_failures
        self.max_events = max_events
        self.stats = EmitterStats()
        # Made at the first flush, not at init: containers restored from one SnapStart
        # snapshot must not share it.
        self.producer: str | None = None
        self._seq = 0
        self._new: deque[dict[str, Any]] = deque()
        self._retry: list[_Message] = []
        self._inflight = 0
        self._lock = threading.Lock()  # one flush at a time; `record` never takes it

    def record(self, ctx: Context, response: Response, latency_ms: float) -> None:
        self._new.append(from_context(ctx, response, latency_ms))
        self.stats.recorded += 1
        if self.pending() > self.max_buffer:
            with contextlib.suppress(IndexError):  # a flush may have drained it meanwhile
                self._log_event(self._new.popleft(), "buffer full")

    def pending(self) -> int:
        """Events not yet sent (may over-count during a flush, never under-count)."""
        return len(self._new) + sum(len(m.events) for m in self._retry) + self._inflight

    def flush(self) -> FlushStats:
        """Send everything buffered; keep what fails for the next flush. Blocks: call off-path."""
        with self._lock:
            batch, self._retry = self._retry, []
            # Counted in flight before they leave the buffer: `pending` may over-count, never under.
            self._inflight = sum(len(m.events) for m in batch)
            fresh: list[dict[str, Any]] = []
            while self._new:
                self._inflight += 1
                fresh.append(self._new.popleft())
            for start in range(0, len(fresh), self.max_events):
                batch.append(self._message(fresh[start : start + self.max_events]))
            stats = FlushStats()
            reachable = True
            for call in _calls(batch):
                failed = self._send(call, stats) if reachable else call
                # After a failed call (endpoint down) do not pay a timeout per remaining call.
                reachable = reachable and len(failed) < len(call)
                for message in failed:
                    message.failures += 1
                    stats.failed += len(message.events)
                    if not message.logged:
                        self._log_message(message, "send failed; retrying")
                    if message.failures >= self.max_failures:
                        stats.dropped += len(message.events)
                    else:
                        self._retry.append(message)
            self._inflight = 0
            self.stats.flushes.append(stats)
            del self.stats.flushes[:-100]
            return stats

    def close(self) -> None:
        """Flush once more, then log whatever is still unsent (container or server shutdown)."""
        self.flush()
        with self._lock:
            leftover, self._retry = self._retry, []
            fresh = list(self._new)
            self._new.clear()
        for message in leftover:
            if not message.logged:
                self._log_message(message, "unsent at shutdown")
        for event in fresh:
            self._log_event(event, "unsent at shutdown")

    def renew_producer(self) -> None:
        """A new producer id for the messages made from now on (a SnapStart restore: containers
        restored from one snapshot must not number messages under one id). Messages already
        made keep theirs: a copy of one sent by two containers is recorded once."""
        with self._lock:
            self.producer = None
            self._seq = 0

    def _message(self, events: list[dict[str, Any]]) -> _Message:
        if self.producer is None:
            self.producer = uuid.uuid4().hex
        seq, self._seq = self._seq, self._seq + 1
        body = orjson.dumps({"version": VERSION, "producer": self.producer, "seq": seq, "events": events})
        return _Message(seq, events, body.decode(), len(body))

    def _send(self, call: list[_Message], stats: FlushStats) -> list[_Message]:
        entries = [{"Id": str(i), "MessageBody": m.body} for i, m in enumerate(call)]
        stats.calls += 1
        self.stats.calls += 1
        try:
            answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception:
            return call
        failed = []
        for failure in answer.get("Failed", []):
            message = call[int(failure["Id"])]
            if failure.get("SenderFault"):
                # The same request will be refused again: log it now, no retry.
                if not message.logged:
                    self._log_message(message, f"refused by SQS: {failure.get('Code')}")
            else:
                failed.append(message)
        done = {e["Id"] for e in answer.get("Successful", [])}
        sent = sum(len(m.events) for i, m in enumerate(call) if str(i) in done)
        stats.sent += sent
        stats.messages += len(done)
        self.stats.sent += sent
        self.stats.messages += len(done)
        return failed

    def _log_message(self, message: _Message, reason: str) -> None:
        message.logged = True
        identity = {"producer": self.producer, "seq": message.seq, "events": len(message.events)}
        for event in message.events:
            self.stats.logged += 1
            self.unsent.write(event, reason, identity)

    def _log_event(self, event: dict[str, Any], reason: str) -> None:
        """An event never sent in any message: replayed bare, deduplicated by its event_id."""
        self.stats.logged += 1
        self.unsent.write(event, reason)


def _calls(messages: list[_Message]) -> list[list[_Message]]:
    """Messages grouped into SendMessageBatch calls: at most 10, and at most MAX_CALL_BYTES."""
    calls: list[list[_Message]] = []
    size = 0
    for message in messages:
        if not calls or len(calls[-1]) == BATCH or size + message.size > MAX_CALL_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(message)
        size += message.size
    return calls


class BackgroundFlusher:
    """Flushes an emitter every `interval_s` from the server's event loop (uvicorn, `tollway dev`)."""

    def __init__(self, emitter: UsageEmitter, interval_s: float = 0.2) -> None:
        self.emitter = emitter
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.emitter.close)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.emitter.pending():
                # The send blocks: run it on a worker thread, never on the loop.
                await asyncio.to_thread(self.emitter.flush)
