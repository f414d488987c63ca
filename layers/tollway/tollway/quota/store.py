"""The counters in DynamoDB: one conditional UpdateItem spends rate and quota together.

Item design (QuotaTable, key `pk`), one item per consumer, counter period and shard:

    pk          "D2026-11-27#0#<consumer>" (day) / "M2026-11#0#<consumer>" (month);
                the consumer id comes last, so any id is unambiguous (`counter_pk` writes
                it, `parse_counter_pk` reads it: nowhere else)
    used        N  quota units spent in the period
    r<len>_<i>  N  requests in rate window <i> of <len> ms (see tollway.quota.limits.Window)
    expires_at  N  TTL, epoch seconds: a day after the period ends
    plan        S  the plan of the request counted last: what the usage true-up prices the
                   units no event attributed at (tollway.usage.trueup)

Spending is one UpdateItem:

    SET used = if_not_exists(used, 0) + :cost, r<i> = if_not_exists(r<i>, 0) + 1, expires_at = :exp,
        plan = :plan
    REMOVE <older window attributes>
    CONDITION (attribute_not_exists(used) OR used <= :quota - :cost)
          AND (attribute_not_exists(r<i>) OR r<i> <= :burst - 1)

DynamoDB applies a conditional update atomically per item, so however many containers
race, `used` never exceeds the quota and `r<i>` never exceeds the burst. Naming the window
attribute after its window is what lets one expression both count in the current window
and start a new one (`if_not_exists`) without a read. Window attributes older than the
previous one are removed by later writes: the previous window's two-before attribute always,
and any other stale one the writing container saw in its last answer (ReturnValues=ALL_NEW),
so the item stays a few dozen bytes (1 WCU). The previous window is kept so that a
container whose clock lags by less than a window cannot restart a counter another just left.

A write that fails its condition comes back with the item as it was
(ReturnValuesOnConditionCheckFailure=ALL_OLD), so the caller learns which limit was hit
without another call; an emulator that does not return it (dynalite) costs one GetItem.

Calls go through a `tollway.aws.dynamodb` caller (async, on the container's shared HTTP
transport) within the request's deadline; its `AwsError` becomes `Exhausted` (a failed
condition) or `StoreUnavailable` (anything else, the deadline passing included).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tollway.aws.errors import AwsError, applied
from tollway.quota.limits import is_window

if TYPE_CHECKING:
    from tollway.aws.dynamodb import Caller

# A bound on the REMOVE list, so that the expression stays far under DynamoDB's 4 KB.
MAX_REMOVALS = 16
CONDITION_FAILED = "ConditionalCheckFailedException"


def counter_pk(period: str, shard: int, consumer: str) -> str:
    """The item of `consumer`'s counter `period` ("D2026-11-27", "M2026-11") and shard."""
    return f"{period}#{shard}#{consumer}"


def parse_counter_pk(pk: str) -> tuple[str, int, str]:
    """(period, shard, consumer) of an item written by `counter_pk`: the period and shard
    never hold a '#', so the consumer, last, is everything after the second one."""
    period, shard, consumer = pk.split("#", 2)
    return period, int(shard), consumer


def counts_towards(period: str, pk: str) -> bool:
    """Whether the counter item `pk` counts units of the calendar `period` (YYYY-MM[-DD]):
    a day's own counters; for a month, its monthly ones and its days' daily ones."""
    counter = parse_counter_pk(pk)[0]
    if len(period) == 10:
        return counter == f"D{period}"
    return counter == f"M{period}" or (counter[:1] == "D" and counter[1:8] == period)


@dataclass(frozen=True, slots=True)
class Budget:
    """What one counter item may hold: the shard's part of the plan for this period."""

    pk: str
    expires_at: int
    quota: int | None  # units per period; None: no quota
    rate: int | None  # requests per rate window; None: no rate limit
    window: str | None  # the current window's attribute, "r<index>"
    plan: str = ""  # the plan of the request spending on it, kept on the item (the true-up's price)


@dataclass(frozen=True, slots=True)
class Counters:
    used: int
    window: str | None  # the rate window `requests` counts in
    requests: int
    windows: tuple[str, ...]  # every window attribute the item held


class Exhausted(Exception):
    """The condition failed: admitting would pass a limit. `counters` is the item as it was."""

    def __init__(self, counters: Counters | None) -> None:
        super().__init__("limit reached")
        self.counters = counters


class StoreUnavailable(Exception):
    """DynamoDB throttled, failed or could not be reached; `reason` is the error code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QuotaStore:
    def __init__(self, caller: Caller, table: str) -> None:
        self.caller = caller
        self.table = table

    def update_request(self, budget: Budget, cost: int, stale: Iterable[str] = ()) -> dict[str, Any]:
        """The UpdateItem request that counts one request of `cost` units on `budget`'s item."""
        names = {"#u": "used", "#e": "expires_at"}
        values: dict[str, Any] = {
            ":z": {"N": "0"},
            ":c": {"N": str(cost)},
            ":e": {"N": str(budget.expires_at)},
        }
        sets = ["#u = if_not_exists(#u, :z) + :c", "#e = :e"]
        if budget.plan:
            names["#p"] = "plan"
            values[":p"] = {"S": budget.plan}
            sets.append("#p = :p")
        conditions = []
        if budget.quota is not None:
            values[":q"] = {"N": str(budget.quota - cost)}
            conditions.append("(attribute_not_exists(#u) OR #u <= :q)")
        if budget.window is not None and budget.rate is not None:
            names["#r"] = budget.window
            values[":one"] = {"N": "1"}
            values[":b"] = {"N": str(budget.rate - 1)}
            sets.append("#r = if_not_exists(#r, :z) + :one")
            conditions.append("(attribute_not_exists(#r) OR #r <= :b)")
        expression = "SET " + ", ".join(sets)
        removals = [name for name in dict.fromkeys(stale) if name != budget.window][:MAX_REMOVALS]
        if removals:
            names.update({f"#x{i}": name for i, name in enumerate(removals)})
            expression += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(removals)))
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": budget.pk}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if conditions:
            request["ConditionExpression"] = " AND ".join(conditions)
        return request

    async def spend(
        self, budget: Budget, cost: int, stale: Iterable[str] = (), *, deadline: float | None = None
    ) -> Counters:
        """Count one request of `cost` units, or raise Exhausted / StoreUnavailable."""
        body = orjson.dumps(self.update_request(budget, cost, stale))
        try:
            answer = await self.caller.call("UpdateItem", body, deadline=deadline)
        except AwsError as error:
            if applied(error):
                return await self._counted_unseen(budget, cost, deadline)
            if error.code != CONDITION_FAILED:
                raise StoreUnavailable(error.code) from error
            item = error.body.get("Item")
            raise Exhausted(_counters(item, budget.window) if item is not None else None) from None
        return _counters(answer.get("Attributes", {}), budget.window)

    async def _counted_unseen(self, budget: Budget, cost: int, deadline: float | None) -> Counters:
        """The write counted (DynamoDB answered 200) but its answer was damaged: sent again it
        would count the request twice, so the item is read instead. If that read fails too,
        the request stays counted, and what it holds is taken as the request's own units (the
        counters then say less than DynamoDB holds: only a local refusal is missed, DynamoDB's
        condition still decides the next admission)."""
        try:
            return await self.read(budget, deadline=deadline)
        except StoreUnavailable:
            window = budget.window
            return Counters(used=cost, window=window, requests=1, windows=(window,) if window else ())

    def settle_request(self, pk: str, delta: int, expires_at: int) -> dict[str, Any]:
        """The UpdateItem that corrects a metered request's reservation by `delta` units.

        Unconditional: the answer has already been given, so its cost is owed whatever the
        counter holds (docs/quota.md states how far this can take a budget past its limit)."""
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "ADD #u :d SET #e = if_not_exists(#e, :e)",
            "ExpressionAttributeNames": {"#u": "used", "#e": "expires_at"},
            "ExpressionAttributeValues": {":d": {"N": str(delta)}, ":e": {"N": str(expires_at)}},
            "ReturnValues": "ALL_NEW",
        }

    async def settle(self, pk: str, delta: int, expires_at: int, window: str | None) -> Counters | None:
        """Add `delta` (negative: a refund) to the item's `used`, or raise StoreUnavailable;
        what the item holds now, or None if it landed but its answer could not be read."""
        body = orjson.dumps(self.settle_request(pk, delta, expires_at))
        try:
            # An ADD that may have landed is never sent again (tollway.quota.settle): the caller
            # would resend it after a broken connection or a damaged answer.
            answer = await self.caller.call("UpdateItem", body, resend=False)
        except AwsError as error:
            if applied(error):
                return None  # landed; what the item holds now is not known
            raise StoreUnavailable(error.code) from error
        return _counters(answer.get("Attributes", {}), window)

    async def read(self, budget: Budget, *, deadline: float | None = None) -> Counters:
        """The item now (strongly consistent); for emulators that do not return ALL_OLD."""
        body = orjson.dumps(
            {"TableName": self.table, "Key": {"pk": {"S": budget.pk}}, "ConsistentRead": True}
        )
        try:
            answer = await self.caller.call("GetItem", body, deadline=deadline)
        except AwsError as error:
            raise StoreUnavailable(error.code) from error
        return _counters(answer.get("Item", {}), budget.window)


def _counters(item: Mapping[str, Any], window: str | None) -> Counters:
    windows = tuple(name for name in item if is_window(name))
    requests = int(item[window]["N"]) if window is not None and window in item else 0
    used = int(item["used"]["N"]) if "used" in item else 0
    return Counters(used=used, window=window, requests=requests, windows=windows)
