"""Read the totals back (SPEC §3 `tollway usage report`): JSON shapes and a table for people.

Each plan's share comes from the totals items' per-plan counters (usage/billing.py). A
totals item written before those counters existed holds units they do not: that rest is
reported under the item's stored `plan`. The report's `plan` is the plan of the most
units (then of the most requests, then the first by name), or the stored plan when the
consumer had no admitted request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollway.usage import table
from tollway.usage.billing import COUNTERS, PLAN_COUNTERS, render_amount
from tollway.usage.trueup import counted, unattributed_price


@dataclass(slots=True)
class PlanUsage:
    requests: int = 0
    units: int = 0
    amount_nanos: int = 0

    def to_json(self) -> dict[str, Any]:
        amount = render_amount(self.amount_nanos)
        return {"requests": self.requests, "units": self.units, "amount_due": amount}


@dataclass(slots=True)
class RouteUsage:
    requests: int = 0
    units: int = 0
    plans: dict[str, PlanUsage] = field(default_factory=dict)


@dataclass(slots=True)
class ConsumerUsage:
    consumer: str
    period: str
    plan: str | None = None
    requests: int = 0
    rejected: int = 0
    units: int = 0
    amount_nanos: int = 0
    currency: str = "USD"
    routes: dict[str, RouteUsage] = field(default_factory=dict)
    plans: dict[str, PlanUsage] = field(default_factory=dict)

    @property
    def main_plan(self) -> str | None:
        if not self.plans:
            return self.plan
        name, _ = min(self.plans.items(), key=lambda kv: (-kv[1].units, -kv[1].requests, kv[0]))
        return name or None
    # Units the quota counters admitted that no event (yet) attributed (tollway.usage.trueup);
    # included in `units` and `amount_nanos`.
    unattributed_units: int = 0
    unattributed_plan: str = ""  # the plan of the counter copy written last
    unattributed_nanos: int = 0
    counted: int | None = None  # the counter copies' units for the period; None: no counter
    uncounted: int = 0  # units of admitted events no counter counted (included in `units`)

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "period": self.period,
            "plan": self.main_plan,
            "requests": self.requests,
            "rejected": self.rejected,
            "units": self.units,
            "amount_due": render_amount(self.amount_nanos),
            "currency": self.currency,
            "routes": {
                rid: {"requests": r.requests, "units": r.units} for rid, r in sorted(self.routes.items())
            },
            "plans": {name: p.to_json() for name, p in sorted(self.plans.items())},
            "unattributed_units": self.unattributed_units,
        }


def _n(item: dict[str, Any], name: str) -> int:
    return int(item[name]["N"]) if name in item else 0


def plan_split(item: dict[str, Any]) -> dict[str, PlanUsage]:
    """Each plan's requests, units and amount in one totals item; the rest the per-plan
    counters do not hold (written before them) is the share of the item's stored `plan`."""
    split: dict[str, PlanUsage] = {}
    for name, value in item.items():
        parsed = table.parse_plan_attribute(name)
        if parsed is not None and parsed[1] in PLAN_COUNTERS:
            setattr(split.setdefault(parsed[0], PlanUsage()), parsed[1], int(value["N"]))
    rest = [_n(item, c) - sum(getattr(p, c) for p in split.values()) for c in PLAN_COUNTERS]
    if any(rest):
        share = split.setdefault(item.get("plan", {}).get("S", ""), PlanUsage())
        for counter, amount in zip(PLAN_COUNTERS, rest, strict=True):
            setattr(share, counter, getattr(share, counter) + amount)
    return split


def _add_plans(into: dict[str, PlanUsage], split: dict[str, PlanUsage]) -> None:
    for name, share in split.items():
        total = into.setdefault(name, PlanUsage())
        total.requests += share.requests
        total.units += share.units
        total.amount_nanos += share.amount_nanos


class UsageReader:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, ConsistentRead=True, **kwargs):
            items.extend(page["Items"])
        return items

    def consumer(self, consumer_id: str, period: str) -> ConsumerUsage:
        """A consumer's usage in a period: a month's totals from its month item; a day's, and
        every period's routes, summed from the day-per-route items (tollway.usage.billing)."""
        table.period_sk(period)
        usage = ConsumerUsage(consumer_id, period)
        pk = {"S": table.consumer_pk(consumer_id)}
        month_key = {"pk": pk, "sk": {"S": table.period_sk(period[:7])}}
        month = self.dynamodb.get_item(TableName=self.table, Key=month_key, ConsistentRead=True)
        month = month.get("Item", {})
        days_prefix = "DAY#" + (period if len(period) == 10 else period + "-")
        days = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": pk, ":prefix": {"S": days_prefix}},
        )
        routes: dict[str, RouteUsage] = {}
        for item in days:
            found = table.day_route_of(item["sk"]["S"])
            if found is not None:
                route = routes.setdefault(found[1], RouteUsage())
                route.requests += _n(item, "requests")
                route.units += _n(item, "units")
                _add_plans(route.plans, plan_split(item))
        usage.routes = routes
        usage.plan = month.get("plan", {}).get("S") or None
        usage.currency = month.get("currency", {}).get("S", usage.currency)
        if len(period) == 7:
            totals = {name: _n(month, name) for name in COUNTERS}
            usage.plans = plan_split(month)
        else:  # a day: the sum of its routes
            totals = dict.fromkeys(COUNTERS, 0)
            for item in days:
                if table.day_route_of(item["sk"]["S"]) is not None:
                    for name in COUNTERS:
                        totals[name] += _n(item, name)
                    _add_plans(usage.plans, plan_split(item))
        usage.requests = totals["requests"]
        usage.rejected = totals["rejected"]
        usage.units = totals["units"]
        usage.amount_nanos = totals["amount_nanos"]
        usage.uncounted = totals["uncounted"]
        self._true_up(usage)
        return usage

    def _true_up(self, usage: ConsumerUsage) -> None:
        """Bill what the quota counters admitted beyond what events attributed (trueup.py)."""
        copies = [
            item
            for prefix in table.counter_copy_prefixes(usage.period)
            for item in self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": {"S": table.consumer_pk(usage.consumer)},
                    ":prefix": {"S": prefix},
                },
            )
        ]
        usage.counted = counted(copies, usage.period)
        # The counters hold the units of the events they counted: those no counter counted (the
        # quota store failed open) are billed from their events alone, beside the counters.
        attributed = usage.units - usage.uncounted
        if usage.counted is None or usage.counted <= attributed:
            return
        plan, micros = unattributed_price(copies)
        usage.unattributed_units = usage.counted - attributed
        usage.unattributed_plan = plan
        usage.unattributed_nanos = usage.unattributed_units * micros
        usage.units += usage.unattributed_units
        usage.amount_nanos += usage.unattributed_nanos
        usage.plan = usage.plan or plan or None
        # The plans still add up to the bill: unattributed units are the counter's plan's.
        share = usage.plans.setdefault(plan, PlanUsage())
        share.units += usage.unattributed_units
        share.amount_nanos += usage.unattributed_nanos

    def consumers(self, period: str) -> list[str]:
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": table.index_pk(period)}},
        )
        return sorted(table.indexed_consumer(item) for item in items)

    def report(self, period: str, consumer: str | None = None) -> dict[str, Any]:
        """SPEC §3's JSON: one consumer's object, or `{"period", "consumers": [...]}`."""
        if consumer is not None:
            return self.consumer(consumer, period).to_json()
        return {
            "period": period,
            "consumers": [self.consumer(c, period).to_json() for c in self.consumers(period)],
        }


def render_table(report: dict[str, Any]) -> str:
    """The report for people: one line per consumer (and one per plan under a consumer of
    several plans), then per route when there is one consumer."""
    consumers = report.get("consumers", [report])
    header = ("CONSUMER", "PLAN", "REQUESTS", "REJECTED", "UNITS", "AMOUNT DUE")
    rows = [header]
    for c in consumers:
        plans = c.get("plans", {})
        rows.append(
            (
                c["consumer"],
                f"{len(plans)} plans" if len(plans) > 1 else c["plan"] or "-",
                str(c["requests"]),
                str(c["rejected"]),
                str(c["units"]),
                f"{c['amount_due']} {c['currency']}",
            )
        )
        if len(plans) > 1:
            rows += [
                (
                    "",
                    f"  {name or '-'}",
                    str(p["requests"]),
                    "",
                    str(p["units"]),
                    f"{p['amount_due']} {c['currency']}",
                )
                for name, p in plans.items()
            ]
    lines = [f"period {report['period']}", *_columns(rows, numeric=range(2, 6))]
    unattributed = report.get("unattributed_units", 0)
    if "consumers" not in report and (report["routes"] or unattributed):
        route_rows = [("ROUTE", "REQUESTS", "UNITS")] + [
            (rid, str(r["requests"]), str(r["units"])) for rid, r in report["routes"].items()
        ]
        if unattributed:  # counted by the quota counters, attributed by no event (trueup.py)
            route_rows.append(("(unattributed)", "-", str(unattributed)))
        lines += ["", *_columns(route_rows, numeric=range(1, 3))]
    if "consumers" in report and not consumers:
        lines.append("(no usage)")
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]], numeric: range) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
