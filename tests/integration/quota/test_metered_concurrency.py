"""Metered routes under concurrency, on both DynamoDB implementations: the bound docs/quota.md states.

Each of C containers (threads with their own event loop, HTTP client, caller and admission)
sends its requests one after another: admit (reserve r), the backend answers after a pause,
the answer's actual cost a is read and settled after the response (`eager`, as under uvicorn:
the container goes on to its next request while the settle is on the wire). With U the most
requests ever unsettled at once (counted from before the admitting call to after the settle's
answer), docs/quota.md's bounds are

    over the limit:  used <= Q + U x max(0, a - r)            (answers that cost more than reserved)
    refused early:   used >= Q - r - (U - 1) x max(0, r - a)  (reservations not yet returned)

and, once every settle has landed, the counter holds exactly the sum of actual costs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import orjson
import pytest
from tollway.config.models import Plan
from tollway.errors import TooManyRequests
from tollway.policy.metering import CostSpec, Term
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore

from .conftest import Dynamo, in_containers, new_container
from .test_concurrency import NOON, PER_THREAD, THREADS, used

QUOTA = 1000
SPEC = CostSpec(terms=(Term(("usage", "total_tokens"), 1),), missing=0, reserve=None, estimate=None)


class Open:
    """Requests between the start of their admission and the answer to their settle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


class CountedStore(QuotaStore):
    """The real store; a settle's answer closes its request in `open_`."""

    def __init__(self, caller, table: str, open_: Open) -> None:
        super().__init__(caller, table)
        self.open_ = open_

    async def settle(self, pk, delta, expires_at, window):
        try:
            return await super().settle(pk, delta, expires_at, window)
        finally:
            self.open_.leave()


def race(dynamo: Dynamo, consumer: str, exchange, reserve: int, actual: int) -> tuple[int, int]:
    """Returns how many requests were admitted, and U."""
    open_ = Open()
    plans = {"tokens": Plan.model_validate({"quota": {"limit": QUOTA, "per": "day"}})}
    body = orjson.dumps({"usage": {"total_tokens": actual}})
    barrier = threading.Barrier(THREADS)
    started = time.monotonic()

    def clock() -> float:
        # Real time from noon of a fixed day: a remembered full quota is rechecked after 1 s,
        # and no run crosses a day boundary.
        return NOON + time.monotonic() - started

    async def serve() -> int:
        box = new_container(dynamo)
        store = CountedStore(box.caller, dynamo.table, open_)
        admission = QuotaAdmission(store, plans, now=clock, refunds=True)
        await admission.settlements.start()
        admitted = 0
        try:
            barrier.wait()
            for _ in range(PER_THREAD):
                ex = exchange(consumer, "tokens", cost=reserve)
                ex.route = replace(ex.route, metering=SPEC)
                open_.enter()
                spend = admission.spend(ex)
                try:
                    await spend.run()
                except TooManyRequests:
                    open_.leave()
                    continue
                admitted += 1
                assert ex.reserved_units == reserve
                await asyncio.sleep(0.003)  # the backend answers
                ex.cost_units = SPEC.read(body, "application/json").units
                if actual == reserve:
                    open_.leave()  # nothing to settle
                spend.settle()  # as the admit step does once the answer is ready
            await admission.settlements.stop()
            assert admission.settlements.failed == 0
        finally:
            await box.exchanger.close()
        return admitted

    results = in_containers(serve, THREADS)
    assert open_.now == 0
    return sum(results), open_.most


@pytest.mark.parametrize(("reserve", "actual"), [(10, 25), (30, 5), (8, 8)], ids=["under", "over", "exact"])
def test_concurrent_metered_requests_stay_within_the_stated_bound(
    dynamo: Dynamo, consumer: str, exchange, reserve: int, actual: int
) -> None:
    admitted, unsettled = race(dynamo, consumer, exchange, reserve, actual)
    total = used(dynamo, f"#{consumer}")
    assert total == admitted * actual  # every settle landed: the counter is the sum of actual costs
    assert total <= QUOTA + unsettled * max(0, actual - reserve)
    assert total >= QUOTA - reserve - (unsettled - 1) * max(0, reserve - actual)
    assert admitted < THREADS * PER_THREAD  # the budget was reached
