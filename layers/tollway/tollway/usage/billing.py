"""Record each usage event exactly once and keep the totals billing reads (UsageTable).

One DynamoDB transaction per event: a conditional put of `EVENT#<event_id>` (fails if
the event was recorded before) and ADDs to four totals items of the consumer, for the
day and the month, overall and per route. A redelivered event fails the condition and
changes nothing; a crash before the commit changes nothing either, so SQS's retry
records it once.

Money is integer arithmetic: a plan's price per 1,000 units becomes integer micro-units
(from the decimal text of the price, not its binary float), and totals keep
`amount_nanos` = sum(units x micros per 1,000 units), exact for any number of events.

An admitted event also ADDs its requests, units and amount to its plan's share of each
totals item (`plan#<plan>#<counter>`, table.py), in the same update: a consumer who changed
plans, or holds keys on two, is billed per plan. `plan` keeps the first plan that wrote
the item (items written before the per-plan counters: the last one), which is the plan
of any units the per-plan counters do not hold (usage/report.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from tollway.config.models import Plan
from tollway.usage import table
from tollway.usage.events import UsageEvent

# Replays and redeliveries must happen within this window to be recognised as duplicates.
DEDUPE_TTL_S = 90 * 86_400
REJECTED_STATUSES = frozenset({403, 429})
COUNTERS = ("requests", "rejected", "events", "units", "amount_nanos")
PLAN_COUNTERS = ("requests", "units", "amount_nanos")


@dataclass(frozen=True, slots=True)
class Price:
    micros_per_1000: int  # micro-units of `currency` per 1,000 units
    currency: str


FREE = Price(0, "USD")


class UnknownPlan(Exception):
    """An admitted event names a plan the config does not have: it cannot be billed."""


def price_of(plan: Plan) -> Price:
    # repr() is the shortest text that round-trips the float: the YAML's own digits.
    per_1000 = Decimal(repr(plan.price.per_1000_units))
    micros = (per_1000 * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return Price(int(micros), plan.price.currency)


def prices(plans: Mapping[str, Plan]) -> dict[str, Price]:
    return {name: price_of(plan) for name, plan in plans.items()}


def render_amount(nanos: int) -> str:
    """Nano-units as a decimal string, rounded to micro-units, at least two decimals: "0.50"."""
    micros = (Decimal(nanos) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    amount = Decimal(int(micros)).scaleb(-6).normalize()
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))
    return f"{amount:f}"


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int
    rejected: int
    events: int
    units: int
    amount_nanos: int


def counts(event: UsageEvent, price: Price) -> Counts:
    units = event.cost_units if event.admitted else 0
    return Counts(
        requests=1 if event.admitted else 0,
        rejected=1 if not event.admitted and event.status in REJECTED_STATUSES else 0,
        events=1,
        units=units,
        amount_nanos=units * price.micros_per_1000,
    )


def totals_keys(event: UsageEvent) -> list[table.Key]:
    return [
        table.totals_key(event.consumer_id, period, route)
        for period in (event.day, event.month)
        for route in (None, event.route_id)
    ]


class Ledger:
    """Writes events into UsageTable; `record` is safe to call again for the same event."""

    def __init__(self, dynamodb: Any, table: str, prices: Mapping[str, Price]) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.prices = prices
        self._indexed: set[tuple[str, str]] = set()

    def price(self, event: UsageEvent) -> Price:
        if event.plan in self.prices:
            return self.prices[event.plan]
        if event.admitted and event.cost_units and event.plan:
            raise UnknownPlan(f"plan {event.plan!r} is not in the config")
        return FREE

    def record(self, event: UsageEvent) -> bool:
        """True if recorded now, False if it had been recorded before."""
        price = self.price(event)
        c = counts(event, price)
        if c.requests or c.rejected:  # not the unauthenticated: they have no consumer to bill
            self._index(event)
        names = {f"#{n}": n for n in COUNTERS} | {"#plan": "plan", "#currency": "currency"}
        values = {f":{n}": {"N": str(getattr(c, n))} for n in COUNTERS} | {
            ":plan": {"S": event.plan},
            ":currency": {"S": price.currency},
        }
        adds = [f"#{n} :{n}" for n in COUNTERS]
        if c.requests:
            names |= {f"#plan_{n}": table.plan_attribute(event.plan, n) for n in PLAN_COUNTERS}
            adds += [f"#plan_{n} :{n}" for n in PLAN_COUNTERS]
        update = "ADD " + ", ".join(adds) + " SET #plan = if_not_exists(#plan, :plan), #currency = :currency"
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **table.dedupe_key(event.event_id),
                        "consumer": {"S": event.consumer_id},
                        "timestamp": {"S": event.timestamp.isoformat()},
                        "expires_at": {"N": str(int(time.time()) + DEDUPE_TTL_S)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        for key in totals_keys(event):
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": key,
                        "UpdateExpression": update,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except self.dynamodb.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    def _index(self, event: UsageEvent) -> None:
        """Who had usage in a period, for reports without --consumer; once per container."""
        for period in (event.day, event.month):
            if (period, event.consumer_id) in self._indexed:
                continue
            # Written before the totals: a crash in between leaves an index entry with no
            # usage (reported as zeros), never usage missing from the index.
            self.dynamodb.put_item(
                TableName=self.table,
                Item=table.index_key(period, event.consumer_id),
            )
            self._indexed.add((period, event.consumer_id))
