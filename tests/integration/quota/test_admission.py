"""One container's admission against a real emulator: windows, costs, headers, memory."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from tollway.config.models import Plan
from tollway.errors import Forbidden, TooManyRequests
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import Budget, QuotaStore

from tests.exchangers import Counting

from .conftest import Clock, Dynamo, admit

PLANS = {
    "free": Plan.model_validate(
        {"rate": {"limit": 5, "per": "second", "burst": 10}, "quota": {"limit": 1000, "per": "day"}}
    ),
    "tight": Plan.model_validate(
        {"rate": {"limit": 2, "per": "second"}, "quota": {"limit": 5, "per": "day"}}
    ),
    "monthly": Plan.model_validate({"quota": {"limit": 2, "per": "month"}}),
    "slow": Plan.model_validate(
        {"rate": {"limit": 3, "per": "minute"}, "quota": {"limit": 1000, "per": "day"}}
    ),
    "metered": Plan.model_validate({"quota": {"limit": 10, "per": "day"}}),
    "unlimited": Plan(),
}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def admission(container):
    """`quota, calls = admission(dynamo, clock)`: a new container's admission step, and the
    DynamoDB operations its HTTP transport carried."""

    def make(dynamo: Dynamo, clock: Clock, **kwargs) -> tuple[QuotaAdmission, Counting]:
        box = container(dynamo)
        return QuotaAdmission(QuotaStore(box.caller, dynamo.table), PLANS, now=clock, **kwargs), box.exchanger

    return make


def items(dynamo: Dynamo, consumer: str) -> dict[str, dict]:
    scanned = dynamo.client().scan(TableName=dynamo.table)["Items"]
    return {i["pk"]["S"]: i for i in scanned if i["pk"]["S"].endswith(f"#{consumer}")}


async def test_admitted_request_carries_ratelimit_fields(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T12:00:00.250"))
    quota, calls = admission(dynamo, clock)
    ex = exchange(consumer, "free")
    fields = await admit(quota, ex)
    assert ex.admitted and ex.cost_units == 1
    assert fields == {
        "ratelimit-policy": '"rate";q=5;w=1;tollway-burst=10, "quota";q=1000;w=86400',
        # burst 10 at 5/s: a 2 s window, 1.75 s of it left; 12 h of the UTC day left.
        "ratelimit": '"rate";r=9;t=2, "quota";r=999;t=43200',
    }
    assert calls.calls == ["UpdateItem"]
    [item] = items(dynamo, consumer).values()
    assert item["pk"]["S"] == f"D2026-11-27#0#{consumer}"
    assert item["used"]["N"] == "1"
    assert int(item["expires_at"]["N"]) == epoch("2026-11-29T00:00:00")  # a day after the period


async def test_rate_window_rolls_over_and_a_rejection_is_remembered(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T12:00:00.400"))
    quota, calls = admission(dynamo, clock)
    for _ in range(2):
        await admit(quota, exchange(consumer, "tight"))
    with pytest.raises(TooManyRequests) as rejected:
        await admit(quota, exchange(consumer, "tight"))
    error = rejected.value
    assert error.limit == "rate" and "rate limit" in error.detail
    assert error.headers["retry-after"] == "1"
    assert error.headers["ratelimit"] == '"rate";r=0;t=1, "quota";r=3;t=43200'
    assert error.extensions["violated-policies"] == ["rate"]
    first_rejection_calls = len(calls.calls)

    # Remembered for the rest of the window: no DynamoDB call.
    with pytest.raises(TooManyRequests):
        await admit(quota, exchange(consumer, "tight"))
    assert len(calls.calls) == first_rejection_calls

    clock.now += 1.0
    ex = exchange(consumer, "tight")
    await admit(quota, ex)
    assert ex.admitted
    assert len(calls.calls) == first_rejection_calls + 1
    [item] = items(dynamo, consumer).values()
    assert item["used"]["N"] == "3"  # the rejected requests spent nothing


async def test_old_window_attributes_are_removed(admission, dynamo: Dynamo, consumer: str, exchange) -> None:
    clock = Clock(epoch("2026-11-27T12:00:00.100"))
    quota, _ = admission(dynamo, clock)
    for step in range(5):
        clock.now += 1 + 3 * step  # gaps of 1, 4, 7, 10, 13 windows
        await admit(quota, exchange(consumer, "tight"))
    [item] = items(dynamo, consumer).values()
    windows = sorted(name for name in item if name.startswith("r"))
    assert len(windows) <= 2, windows


async def test_quota_day_rolls_over_at_utc_midnight(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T23:59:59.900"))
    quota, calls = admission(dynamo, clock)
    for _ in range(10):
        await admit(quota, exchange(consumer, "metered"))
    with pytest.raises(TooManyRequests) as rejected:
        await admit(quota, exchange(consumer, "metered"))
    assert rejected.value.limit == "quota"
    assert "quota exceeded" in rejected.value.detail
    assert rejected.value.headers["retry-after"] == "1"
    calls_before = len(calls.calls)
    with pytest.raises(TooManyRequests):
        await admit(quota, exchange(consumer, "metered"))
    assert len(calls.calls) == calls_before  # remembered until midnight

    clock.now = epoch("2026-11-28T00:00:00.100")
    await admit(quota, exchange(consumer, "metered"))
    assert {pk: i["used"]["N"] for pk, i in items(dynamo, consumer).items()} == {
        f"D2026-11-27#0#{consumer}": "10",
        f"D2026-11-28#0#{consumer}": "1",
    }


async def test_quota_month_is_the_calendar_month(admission, dynamo: Dynamo, consumer: str, exchange) -> None:
    clock = Clock(epoch("2026-12-31T23:00:00"))
    quota, _ = admission(dynamo, clock)
    ex = exchange(consumer, "monthly")
    fields = await admit(quota, ex)
    assert fields["ratelimit-policy"] == f'"quota";q=2;w={31 * 86400}'
    assert fields["ratelimit"] == '"quota";r=1;t=3600'
    await admit(quota, exchange(consumer, "monthly"))
    with pytest.raises(TooManyRequests) as rejected:
        await admit(quota, exchange(consumer, "monthly"))
    assert rejected.value.headers["retry-after"] == "3600"
    clock.now = epoch("2027-01-01T00:00:01")
    await admit(quota, exchange(consumer, "monthly"))
    assert set(items(dynamo, consumer)) == {f"M2026-12#0#{consumer}", f"M2027-01#0#{consumer}"}


async def test_cost_units_are_spent_and_checked(admission, dynamo: Dynamo, consumer: str, exchange) -> None:
    quota, calls = admission(dynamo, Clock(epoch("2026-11-27T08:00:00")))
    for _ in range(3):
        ex = exchange(consumer, "metered", cost=3)
        await admit(quota, ex)
        assert ex.cost_units == 3
    with pytest.raises(TooManyRequests) as rejected:  # 9 + 3 > 10
        await admit(quota, exchange(consumer, "metered", cost=3))
    assert rejected.value.headers["ratelimit"].startswith('"quota";r=1;')
    await admit(quota, exchange(consumer, "metered", cost=1))  # 9 + 1 fits
    calls_before = len(calls.calls)
    free = exchange(consumer, "metered", cost=0)
    await admit(quota, free)  # costs nothing, counts nothing: no call
    assert free.admitted and free.cost_units == 0
    assert len(calls.calls) == calls_before
    [item] = items(dynamo, consumer).values()
    assert item["used"]["N"] == "10"


async def test_plan_without_limits_and_unknown_plan(
    admission, moto_dynamo: Dynamo, consumer: str, exchange
) -> None:
    quota, calls = admission(moto_dynamo, Clock(epoch("2026-11-27T08:00:00")))
    ex = exchange(consumer, "unlimited")
    fields = await admit(quota, ex)
    assert ex.admitted and fields == {} and calls.calls == []
    with pytest.raises(Forbidden):
        await admit(quota, exchange(consumer, "no-such-plan"))


async def test_one_http_request_per_admission_none_when_remembered(
    admission, moto_dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T08:00:00.100"))
    first, first_calls = admission(moto_dynamo, clock)
    second, second_calls = admission(moto_dynamo, clock)  # another container
    for _ in range(2):
        await admit(first, exchange(consumer, "tight"))
    assert first_calls.calls == ["UpdateItem", "UpdateItem"]  # one HTTP request per admitted request
    with pytest.raises(TooManyRequests):
        await admit(first, exchange(consumer, "tight"))
    assert len(first_calls.calls) == 2  # its last answer showed the window full: no request

    with pytest.raises(TooManyRequests) as rejected:
        await admit(second, exchange(consumer, "tight"))
    assert rejected.value.limit == "rate"
    assert second_calls.calls == ["UpdateItem"]  # moto returns the old item: no extra read
    with pytest.raises(TooManyRequests):
        await admit(second, exchange(consumer, "tight"))
    assert second_calls.calls == ["UpdateItem"]  # remembered: no request at all


async def test_an_admission_writes_one_capacity_unit(
    admission, container, moto_dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T08:00:00.100"))
    quota, _ = admission(moto_dynamo, clock)
    await admit(quota, exchange(consumer, "tight"))
    [item] = items(moto_dynamo, consumer).values()
    [window] = [name for name in item if name.startswith("r")]
    # The store's own UpdateItem on that item, asking DynamoDB to report what it consumed.
    store = QuotaStore(container(moto_dynamo).caller, moto_dynamo.table)
    budget = Budget(item["pk"]["S"], int(item["expires_at"]["N"]), quota=5, rate=2, window=window)
    request = {**store.update_request(budget, 1), "ReturnConsumedCapacity": "TOTAL"}
    answer = await store.caller.call("UpdateItem", orjson.dumps(request))
    assert answer["Attributes"]["used"] == {"N": "2"}
    assert 0 < answer["ConsumedCapacity"]["CapacityUnits"] <= 1


async def test_a_rejection_names_its_limit_on_both_emulators(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T08:00:00.100"))
    first, _ = admission(dynamo, clock)
    for _ in range(5):
        clock.now += 1  # a new rate window each time: only the quota (5 a day) binds
        await admit(first, exchange(consumer, "tight"))
    second, calls = admission(dynamo, clock)  # another container, that knows nothing yet
    with pytest.raises(TooManyRequests) as rejected:
        await admit(second, exchange(consumer, "tight"))
    assert rejected.value.limit == "quota"
    assert rejected.value.headers["ratelimit"].endswith('"quota";r=0;t=57595')
    # DynamoDB and moto return the old item with the failed condition; dynalite does not,
    # so there the first rejection reads it once.
    assert calls.calls == (["UpdateItem"] if dynamo.name == "moto" else ["UpdateItem", "GetItem"])


async def test_a_refund_by_another_container_is_seen_after_recheck_s(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    """Metered routes settle after the answer, and a settle can return units: a container
    that remembers the quota full asks again after `recheck_s`, never before, and the
    settling container's own memory takes the settle's answer."""
    from dataclasses import replace

    from tollway.policy.metering import CostSpec, Term

    spec = CostSpec(terms=(Term(("usage", "n"), 1),), missing=0, reserve=None, estimate=None)

    def metered(cost: int):
        ex = exchange(consumer, "metered", cost=cost)
        ex.route = replace(ex.route, metering=spec)
        return ex

    clock = Clock(epoch("2026-11-27T08:00:00.100"))
    settling, _ = admission(dynamo, clock, refunds=True)
    watching, calls = admission(dynamo, clock, refunds=True)
    big = metered(10)
    spend = settling.spend(big)
    await spend.run()  # reserves the whole day's 10
    with pytest.raises(TooManyRequests):
        await admit(watching, metered(1))
    seen = len(calls.calls)

    big.cost_units = 4  # the answer cost 4: 6 units go back
    spend.settle()
    await settling.settlements.drain()
    assert spend.budget is not None
    assert int(items(dynamo, consumer)[spend.budget.pk]["used"]["N"]) == 4
    assert settling.memory.get(spend.budget.pk).used == 4
    await admit(settling, metered(1))  # its memory took the settle's answer

    with pytest.raises(TooManyRequests):
        await admit(watching, metered(1))
    assert len(calls.calls) == seen  # remembered full: no call within recheck_s
    clock.now += 1.01
    await admit(watching, metered(1))  # asked again, and admitted
    assert len(calls.calls) == seen + 1


async def test_without_metered_routes_a_full_quota_is_remembered_until_the_period_ends(
    admission, moto_dynamo: Dynamo, consumer: str, exchange
) -> None:
    clock = Clock(epoch("2026-11-27T08:00:00.100"))
    quota, calls = admission(moto_dynamo, clock)
    for _ in range(10):
        await admit(quota, exchange(consumer, "metered"))
    for _ in range(2):
        with pytest.raises(TooManyRequests):
            await admit(quota, exchange(consumer, "metered"))
        clock.now += 3600
    assert len(calls.calls) == 10  # the tenth answer showed the quota full: never asked again


async def test_a_reservation_past_dynamodbs_numbers_is_capped_never_a_store_failure(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    """`max_tokens: 1e300` x 3 has 301 digits; DynamoDB (and dynalite) refuse more than 38
    with a ValidationException, which would pass for an unavailable store: 503, or with
    `quota_failure: open` an uncounted admission. Capped, it is counted (a rate-only plan)."""
    from dataclasses import replace

    from tollway.policy.metering import MAX_UNITS, CostSpec, Estimate, Term

    spec = CostSpec(
        terms=(Term(("usage", "n"), 1),), missing=0, reserve=None, estimate=Estimate(("max_tokens",), 3, 0)
    )
    plans = {"rateonly": Plan.model_validate({"rate": {"limit": 100, "per": "second"}})}
    box_admission, _ = admission(dynamo, Clock(epoch("2026-11-27T08:00:00.100")))
    box_admission.plans = plans
    ex = exchange(consumer, "rateonly", quota_failure="closed")
    ex.route = replace(ex.route, metering=spec)
    ex.request.body = b'{"max_tokens": 1e300}'
    spend = box_admission.spend(ex)
    await spend.run()
    assert ex.reserved_units == MAX_UNITS and spend.budget is not None
    assert int(items(dynamo, consumer)[spend.budget.pk]["used"]["N"]) == MAX_UNITS


async def test_a_plans_rate_window_survives_the_writes_of_another_plan_of_the_consumer(
    admission, dynamo: Dynamo, consumer: str, exchange
) -> None:
    """A consumer with keys on two plans has one counter item per period: the per-second
    plan's writes clean up old windows, and must never take the per-minute plan's live window
    for one (it did: the window names held only their index, so a 1 s window's index made
    every 60 s window look ancient, and alternating keys lifted the slower plan's limit)."""
    clock = Clock(epoch("2026-11-27T12:00:00.400"))
    slow, _ = admission(dynamo, clock)
    fast, _ = admission(dynamo, clock)
    for _ in range(3):
        await admit(slow, exchange(consumer, "slow"))
    with pytest.raises(TooManyRequests):
        await admit(slow, exchange(consumer, "slow"))
    for _ in range(2):  # the second write has seen the slow plan's window in the item
        await admit(fast, exchange(consumer, "tight"))
    clock.now += 1.0  # a new second, and a fresh container: nothing remembered
    fresh, _ = admission(dynamo, clock)
    with pytest.raises(TooManyRequests) as refused:
        await admit(fresh, exchange(consumer, "slow"))
    assert refused.value.limit == "rate"
    [item] = items(dynamo, consumer).values()
    windows = {name.split("_")[0]: item[name]["N"] for name in item if name.startswith("r")}
    assert windows == {"r1000": "2", "r60000": "3"}, item  # each plan's live window, as counted
