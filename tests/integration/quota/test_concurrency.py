"""Many containers race for one consumer's plan: exactly the limit is admitted, never more."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from tollway.config.models import Plan
from tollway.core.context import Context
from tollway.errors import TooManyRequests
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore

from .conftest import Clock, Dynamo, in_containers, new_container

THREADS = 8
PER_THREAD = 30  # 240 requests in all
NOON = 1_795_000_000.5  # mid-second, so every request falls in one rate window


def race(
    dynamo: Dynamo, plans: dict[str, Plan], make: Callable[[], Context], clock: Clock
) -> tuple[int, int]:
    """Each thread is a container: its own event loop, HTTP client, DynamoDB caller and
    admission step. Returns (admitted, rejected)."""
    barrier = threading.Barrier(THREADS)

    async def serve() -> tuple[int, int]:
        box = new_container(dynamo)
        admission = QuotaAdmission(QuotaStore(box.caller, dynamo.table), plans, now=clock)
        admitted = rejected = 0
        try:
            barrier.wait()  # every container ready: the requests start together
            for _ in range(PER_THREAD):
                try:
                    await admission.spend(make()).run()
                    admitted += 1
                except TooManyRequests:
                    rejected += 1
        finally:
            await box.exchanger.close()
        return admitted, rejected

    results = in_containers(serve, THREADS)
    return sum(a for a, _ in results), sum(r for _, r in results)


def used(dynamo: Dynamo, pk_suffix: str) -> int:
    items = dynamo.client().scan(TableName=dynamo.table)["Items"]
    return sum(int(i["used"]["N"]) for i in items if i["pk"]["S"].endswith(pk_suffix))


def test_quota_admits_exactly_its_limit_under_concurrency(dynamo: Dynamo, consumer: str, exchange) -> None:
    plans = {"metered": Plan.model_validate({"quota": {"limit": 97, "per": "day"}})}
    admitted, rejected = race(dynamo, plans, lambda: exchange(consumer, "metered"), Clock(NOON))
    assert (admitted, rejected) == (97, THREADS * PER_THREAD - 97)
    assert used(dynamo, f"#{consumer}") == 97


def test_rate_limit_admits_exactly_its_burst_in_one_window(dynamo: Dynamo, consumer: str, exchange) -> None:
    plans = {"fast": Plan.model_validate({"rate": {"limit": 50, "per": "second", "burst": 100}})}
    admitted, rejected = race(dynamo, plans, lambda: exchange(consumer, "fast"), Clock(NOON))
    assert (admitted, rejected) == (100, THREADS * PER_THREAD - 100)


def test_rate_and_quota_together_admit_the_tighter(dynamo: Dynamo, consumer: str, exchange) -> None:
    plans = {
        "both": Plan.model_validate(
            {"rate": {"limit": 150, "per": "minute"}, "quota": {"limit": 400, "per": "month"}}
        )
    }
    # Cost 3: 400 units allow 133 requests, the rate 150: the quota binds.
    admitted, _ = race(dynamo, plans, lambda: exchange(consumer, "both", cost=3), Clock(NOON))
    assert (admitted, used(dynamo, f"#{consumer}")) == (133, 399)


@pytest.mark.parametrize("shards", [4])
def test_sharded_counters_never_over_admit(dynamo: Dynamo, consumer: str, exchange, shards: int) -> None:
    plans = {"hot": Plan.model_validate({"quota": {"limit": 101, "per": "day"}, "shards": shards})}
    admitted, _ = race(dynamo, plans, lambda: exchange(consumer, "hot"), Clock(NOON))
    # 240 requests over 4 shards of 26/25/25/25 units: every shard fills (a shard that a
    # container knows full is skipped), so the whole quota is spent, and never more.
    assert admitted == 101
    items = [
        i for i in dynamo.client().scan(TableName=dynamo.table)["Items"] if i["pk"]["S"].endswith(consumer)
    ]
    assert sorted(int(i["used"]["N"]) for i in items) == [25, 25, 25, 26]
