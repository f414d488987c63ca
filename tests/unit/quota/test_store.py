"""The store's request and its reading of DynamoDB's answers, with a caller that replays them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tollway.aws.errors import AwsError
from tollway.quota.store import (
    MAX_REMOVALS,
    Budget,
    Exhausted,
    QuotaStore,
    StoreUnavailable,
    counter_pk,
    counts_towards,
    parse_counter_pk,
)

BUDGET = Budget("D2026-11-27#0#acme", 1_795_000_000, quota=10, rate=4, window="r900")


class Replay:
    """A caller that records what it was asked and answers (or fails) as told."""

    def __init__(self, answer: dict[str, Any] | AwsError) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.deadlines: list[float | None] = []

    async def call(
        self, operation: str, body: bytes, *, deadline: float | None = None, resend: bool = True
    ) -> dict[str, Any]:
        self.calls.append((operation, orjson.loads(body)))
        self.deadlines.append(deadline)
        if isinstance(self.answer, AwsError):
            raise self.answer
        return self.answer


def test_one_update_counts_both_limits_under_one_condition() -> None:
    request = QuotaStore(Replay({}), "QuotaTable").update_request(BUDGET, 3, ["r897", "r898", "r900"])
    assert request["UpdateExpression"] == (
        "SET #u = if_not_exists(#u, :z) + :c, #e = :e, #r = if_not_exists(#r, :z) + :one REMOVE #x0, #x1"
    )
    assert request["ConditionExpression"] == (
        "(attribute_not_exists(#u) OR #u <= :q) AND (attribute_not_exists(#r) OR #r <= :b)"
    )
    assert request["ExpressionAttributeNames"] == {
        "#u": "used",
        "#e": "expires_at",
        "#r": "r900",
        "#x0": "r897",
        "#x1": "r898",
    }
    values = request["ExpressionAttributeValues"]
    assert (values[":c"], values[":q"], values[":b"]) == ({"N": "3"}, {"N": "7"}, {"N": "3"})
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_removals_are_bounded_and_a_plan_without_limits_has_no_condition() -> None:
    store = QuotaStore(Replay({}), "QuotaTable")
    many = [f"r{i}" for i in range(100)]
    request = store.update_request(BUDGET, 1, many)
    assert request["UpdateExpression"].count("#x") == MAX_REMOVALS
    unbounded = Budget("D2026-11-27#0#acme", 1_795_000_000, quota=None, rate=None, window=None)
    assert "ConditionExpression" not in store.update_request(unbounded, 1)


async def test_spend_sends_the_request_and_reads_the_new_counters() -> None:
    caller = Replay({"Attributes": {"used": {"N": "4"}, "r899": {"N": "9"}, "r900": {"N": "2"}}})
    counters = await QuotaStore(caller, "QuotaTable").spend(BUDGET, 1)
    assert (counters.used, counters.requests, set(counters.windows)) == (4, 2, {"r899", "r900"})
    [(operation, body)] = caller.calls
    assert operation == "UpdateItem" and body["Key"] == {"pk": {"S": BUDGET.pk}}


async def test_a_failed_condition_is_exhausted_with_the_old_item() -> None:
    old = {"Item": {"used": {"N": "10"}, "r900": {"N": "1"}}}
    store = QuotaStore(Replay(AwsError("ConditionalCheckFailedException", old, 400)), "QuotaTable")
    with pytest.raises(Exhausted) as exhausted:
        await store.spend(BUDGET, 1)
    assert exhausted.value.counters is not None and exhausted.value.counters.used == 10
    # Without the old item (dynalite), the admission reads it.
    bare = QuotaStore(Replay(AwsError("ConditionalCheckFailedException", {}, 400)), "QuotaTable")
    with pytest.raises(Exhausted) as exhausted:
        await bare.spend(BUDGET, 1)
    assert exhausted.value.counters is None


@pytest.mark.parametrize(
    "code", ["ThrottlingException", "ResourceNotFoundException", "InternalServerError", "Timeout"]
)
async def test_any_other_error_is_the_store_unavailable(code: str) -> None:
    store = QuotaStore(Replay(AwsError(code)), "QuotaTable")
    with pytest.raises(StoreUnavailable) as unavailable:
        await store.spend(BUDGET, 1)
    assert unavailable.value.reason == code
    with pytest.raises(StoreUnavailable):
        await store.read(BUDGET)


@given(consumer=st.text(min_size=1, max_size=40), shard=st.integers(0, 63))
def test_a_counter_key_reads_back_its_period_shard_and_consumer(consumer: str, shard: int) -> None:
    for period in ("D2026-11-27", "M2026-11"):
        assert parse_counter_pk(counter_pk(period, shard, consumer)) == (period, shard, consumer)


def test_a_month_counts_its_monthly_and_its_days_counters_a_day_only_its_own() -> None:
    assert counts_towards("2026-11", counter_pk("M2026-11", 0, "a#b"))
    assert counts_towards("2026-11", counter_pk("D2026-11-27", 3, "a"))
    assert not counts_towards("2026-11", counter_pk("D2026-12-01", 0, "a"))
    assert not counts_towards("2026-11", counter_pk("M2026-10", 0, "2026-11"))
    assert counts_towards("2026-11-27", counter_pk("D2026-11-27", 1, "a"))
    assert not counts_towards("2026-11-27", counter_pk("M2026-11", 0, "a"))
    assert not counts_towards("2026-11-27", counter_pk("D2026-11-28", 0, "a"))
