"""Buffer usage events on the response path; send them to SQS after it, ten per call.

`record` costs a few microseconds and makes no AWS call. `flush` runs after the
response: from the Lambda extension thread (tollway.usage.extension) or, under uvicorn,
from `BackgroundFlusher` every ~200 ms. It sends with SendMessageBatch through any object
with boto3's `send_message_batch` signature: in the router, `tollway.aws.sqs.LeanSqs`
(a fraction of botocore's CPU per flush); in tools, a boto3 client. An event whose send
fails (the call raises, or SQS lists it as failed) stays buffered and is retried on the
next flush.

Never lost: the first time an event fails to send it is also written to the unsent log
(one JSON line, `"usage_event_unsent": true`), so that a container reaped during an SQS
outage loses nothing; `tollway usage replay` re-sends such lines, and the usage function's
dedupe on `event_id` makes a line whose event got through later harmless. Events still
unsent after `max_failures` flushes, pushed out of a full buffer, or left at shutdown
are dropped from memory only once they are in that log.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from tollway.http.messages import Response
from tollway.pipeline import Exchange
from tollway.usage.events import from_exchange

MARKER = "usage_event_unsent"
BATCH = 10  # SendMessageBatch's limit


class UnsentLog:
    """Structured log records of events not (yet) sent; the input of `tollway usage replay`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any], reason: str) -> None:
        line = orjson.dumps(
            {
                "level": "ERROR",
                "message": "usage event unsent",
                "service": "tollway",
                MARKER: True,
                "reason": reason,
                "usage_event": event,
            }
        )
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line.decode() + "\n")
            stream.flush()


@dataclass(slots=True)
class _Pending:
    event: dict[str, Any]
    failures: int = 0
    logged: bool = False


@dataclass(slots=True)
class FlushStats:
    sent: int = 0
    failed: int = 0
    calls: int = 0
    dropped: int = 0


@dataclass(slots=True)
class EmitterStats:
    recorded: int = 0
    sent: int = 0
    calls: int = 0
    logged: int = 0
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
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.unsent = unsent or UnsentLog()
        self.max_buffer = max_buffer
        self.max_failures = max_failures
        self.stats = EmitterStats()
        self._new: deque[_Pending] = deque()
        self._retry: list[_Pending] = []
        self._inflight = 0
        self._lock = threading.Lock()  # one flush at a time; `record` never takes it

    def record(self, exchange: Exchange, response: Response, latency_ms: float) -> None:
        self._new.append(_Pending(from_exchange(exchange, response, latency_ms)))
        self.stats.recorded += 1
        if len(self._new) + len(self._retry) > self.max_buffer:
            with contextlib.suppress(IndexError):  # a flush may have drained it meanwhile
                self._give_up(self._new.popleft(), "buffer full")

    def pending(self) -> int:
        return len(self._new) + len(self._retry) + self._inflight

    def flush(self) -> FlushStats:
        """Send everything buffered; keep what fails for the next flush. Blocks: call off-path."""
        with self._lock:
            # Counted in flight before they leave the buffer: `pending` may over-count, never under.
            self._inflight = len(self._retry)
            batch, self._retry = self._retry, []
            while self._new:
                self._inflight += 1
                batch.append(self._new.popleft())
            stats = FlushStats()
            reachable = True
            for start in range(0, len(batch), BATCH):
                chunk = batch[start : start + BATCH]
                failed = self._send(chunk, stats) if reachable else chunk
                # After a failed call (endpoint down) do not pay a timeout per remaining chunk.
                reachable = reachable and len(failed) < len(chunk)
                for pending in failed:
                    pending.failures += 1
                    stats.failed += 1
                    if not pending.logged:
                        pending.logged = True
                        self._log(pending, "send failed; retrying")
                    if pending.failures >= self.max_failures:
                        stats.dropped += 1
                    else:
                        self._retry.append(pending)
            self._inflight = 0
            self.stats.flushes.append(stats)
            del self.stats.flushes[:-100]
            return stats

    def close(self) -> None:
        """Flush once more, then log whatever is still unsent (container or server shutdown)."""
        self.flush()
        with self._lock:
            leftover = self._retry + list(self._new)
            self._retry = []
            self._new.clear()
        for pending in leftover:
            self._give_up(pending, "unsent at shutdown")

    def _send(self, chunk: list[_Pending], stats: FlushStats) -> list[_Pending]:
        entries = [{"Id": str(i), "MessageBody": orjson.dumps(p.event).decode()} for i, p in enumerate(chunk)]
        stats.calls += 1
        self.stats.calls += 1
        try:
            answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception:
            return chunk
        failed = []
        for failure in answer.get("Failed", []):
            pending = chunk[int(failure["Id"])]
            if failure.get("SenderFault"):
                # The same request will be refused again: log it now, no retry.
                self._give_up(pending, f"refused by SQS: {failure.get('Code')}")
            else:
                failed.append(pending)
        sent = len(answer.get("Successful", []))
        stats.sent += sent
        self.stats.sent += sent
        return failed

    def _give_up(self, pending: _Pending, reason: str) -> None:
        if not pending.logged:
            pending.logged = True
            self._log(pending, reason)

    def _log(self, pending: _Pending, reason: str) -> None:
        self.stats.logged += 1
        self.unsent.write(pending.event, reason)


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
