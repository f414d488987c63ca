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
from tollway.usage.billing import PLAN_COUNTERS, render_amount


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
        prefix = table.period_sk(period)
        usage = ConsumerUsage(consumer_id, period)
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": table.consumer_pk(consumer_id)},
                ":prefix": {"S": prefix},
            },
        )
        for item in items:
            sk = item["sk"]["S"]
            if sk == prefix:
                usage.plan = item.get("plan", {}).get("S") or None
                usage.currency = item.get("currency", {}).get("S", usage.currency)
                usage.requests = _n(item, "requests")
                usage.rejected = _n(item, "rejected")
                usage.units = _n(item, "units")
                usage.amount_nanos = _n(item, "amount_nanos")
                usage.plans = plan_split(item)
            elif (route_id := table.route_of(sk, period)) is not None:
                usage.routes[route_id] = RouteUsage(_n(item, "requests"), _n(item, "units"), plan_split(item))
        return usage

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
    if "consumers" not in report and report["routes"]:
        route_rows = [("ROUTE", "REQUESTS", "UNITS")] + [
            (rid, str(r["requests"]), str(r["units"])) for rid, r in report["routes"].items()
        ]
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
