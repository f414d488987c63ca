"""Settling metered requests: after the answer, the counter is corrected to the actual cost.

Admission spent the request's reservation; the answer said what it really cost
(tollway.policy.metering). The difference is one unconditional UpdateItem (`ADD used :delta`)
on the counter item the reservation went to, sent after the response, never on the
caller's path:

- under uvicorn (`tollway dev`, any ASGI server with lifespan): `eager`, each settlement is
  a task of the server's event loop, started when the response is ready;
- on Lambda (Mangum, lifespan off): settlements are buffered, and the usage extension
  (tollway.functions.extension) calls `flush` after the handler has returned, in the window
  where it also sends usage events. The router's event loop is idle then, and Lambda
  sends no next invocation until the extension asks for it, so `flush` runs the loop
  itself, on the container's shared HTTP client and its kept connection.

A settle that fails (DynamoDB unavailable) is kept and tried again (the next flush on
Lambda, after a short pause under uvicorn), `MAX_ATTEMPTS` times in all; then it is given
up with an error log line `quota settle failed` that carries the delta, and the metric
`QuotaSettleFailures`. `tollway usage reconcile` shows such a counter as differing from
the bill by exactly that delta. A settle that was sent and got no whole answer (a timeout,
a broken connection, a damaged answer) may have been applied: sending the same ADD again
could apply it twice, and the counter is also the bill (tollway.usage.trueup), so it is
given up at once, its line saying `"outcome": "unknown"`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from tollway.observability import count, logger
from tollway.quota.memory import CounterMemory
from tollway.quota.store import QuotaStore, StoreUnavailable

MAX_ATTEMPTS = 3
RETRY_PAUSE_S = 0.1
# Failures after which the settle may have been applied all the same (it was sent, and no answer
# came back whole): an ADD sent again would then count twice, and the counter is the bill (the
# usage true-up). Such a settle is not sent again: it is given up, logged with its delta.
UNKNOWN_OUTCOME = frozenset({"Timeout", "ConnectionError", "CRC32Mismatch"})


@dataclass(slots=True)
class Settlement:
    pk: str  # the counter item the reservation was spent on
    delta: int  # actual cost - reservation; negative returns unused units
    expires_at: int
    window: str | None
    route_id: str
    consumer_id: str
    request_id: str
    attempts: int = 0
    unknown: bool = False  # the last attempt may have been applied: never sent again


class Settlements:
    def __init__(
        self, store: QuotaStore, memory: CounterMemory, *, now: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.memory = memory
        self.now = now
        self.eager = False  # set by the server's startup hook: settle in tasks at once
        self.sent = 0
        self.failed = 0
        self._pending: deque[Settlement] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: set[asyncio.Task[None]] = set()  # on Lambda: writes awaited by `drain`
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, settlement: Settlement) -> None:
        """Called on the request path, inside the event loop: no await, no AWS call here."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        seen = self.memory.get(settlement.pk)
        if seen is not None:
            # This container counts its own settle at once, before DynamoDB has answered it, so
            # that its next request is not refused locally for units this answer did not use.
            # Memory only ever refuses locally; admission itself is DynamoDB's conditional write.
            adjusted = replace(seen, used=max(seen.used + settlement.delta, 0))
            self.memory.put(settlement.pk, adjusted, self.memory.seen_at(settlement.pk))
        if not self.eager:
            self._pending.append(settlement)
            return
        task = loop.create_task(self._eager(settlement), name="quota-settle")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_if_counted(self, write: asyncio.Future[object], settlement: Settlement) -> None:
        """A counter write whose answer its request could not wait for: `settlement` (taking it
        back) is made once the write turns out to have been counted."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        task = loop.create_task(self._once_counted(write, settlement), name="quota-late-write")
        waiting = self._tasks if self.eager else self._waiting
        waiting.add(task)
        task.add_done_callback(waiting.discard)

    async def _once_counted(self, write: asyncio.Future[object], settlement: Settlement) -> None:
        try:
            await write
        except StoreUnavailable as failure:
            if failure.reason in ("Timeout", "ConnectionError", "InternalServerError"):
                # No answer at all, or DynamoDB's own failure (which may have been applied after
                # all): the counter may hold the request, and the bill with it.
                logger.warning(
                    "quota write outcome unknown",
                    extra={
                        "pk": settlement.pk,
                        "units": -settlement.delta,
                        "request_id": settlement.request_id,
                    },
                )
            return
        except Exception:
            return  # a failed condition: nothing was counted
        self.add(settlement)

    def pending(self) -> int:
        return len(self._pending) + len(self._tasks) + len(self._waiting)

    async def drain(self) -> None:
        """Send every buffered settlement once; failed ones stay for the next drain."""
        if self._waiting:
            await asyncio.gather(*self._waiting, return_exceptions=True)
        for _ in range(len(self._pending)):
            settlement = self._pending.popleft()
            if not await self._send(settlement):
                self._keep(settlement)

    def flush(self) -> object:
        """The Lambda extension's call after the handler returned: drain on the idle loop."""
        loop = self._loop
        if not (self._pending or self._waiting) or loop is None or loop.is_closed() or loop.is_running():
            return None  # nothing to do, or the handler still runs (it will be flushed next time)
        loop.run_until_complete(self.drain())
        return None

    async def start(self) -> None:
        self.eager = True

    async def stop(self) -> None:
        """Server shutdown: wait for the settles in flight, then send what is buffered."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.drain()
        for settlement in self._pending:
            self._give_up(settlement)
        self._pending.clear()

    async def _eager(self, settlement: Settlement) -> None:
        while not await self._send(settlement):
            if settlement.attempts >= MAX_ATTEMPTS or settlement.unknown:
                self._give_up(settlement)
                return
            await asyncio.sleep(RETRY_PAUSE_S * settlement.attempts)

    async def _send(self, settlement: Settlement) -> bool:
        settlement.attempts += 1
        try:
            counters = await self.store.settle(
                settlement.pk, settlement.delta, settlement.expires_at, settlement.window
            )
        except StoreUnavailable as failure:
            settlement.unknown = failure.reason in UNKNOWN_OUTCOME
            if not settlement.unknown:
                logger.warning(
                    "quota settle retrying",
                    extra={"reason": failure.reason, "request_id": settlement.request_id},
                )
            return False
        self.sent += 1
        if counters is not None:
            # What this container knows of the item is now this answer (a refund lowers `used`).
            self.memory.put(settlement.pk, counters, self.now())
        return True

    def _keep(self, settlement: Settlement) -> None:
        if settlement.attempts >= MAX_ATTEMPTS or settlement.unknown:
            self._give_up(settlement)
        else:
            self._pending.append(settlement)

    def _give_up(self, settlement: Settlement) -> None:
        self.failed += 1
        count("QuotaSettleFailures", settlement.route_id)
        logger.error(
            "quota settle failed",
            extra={
                # unknown: it may have been applied (no whole answer came back); else it was not.
                "outcome": "unknown" if settlement.unknown else "not applied",
                "pk": settlement.pk,
                "delta": settlement.delta,
                "route_id": settlement.route_id,
                "consumer_id": settlement.consumer_id,
                "request_id": settlement.request_id,
            },
        )
