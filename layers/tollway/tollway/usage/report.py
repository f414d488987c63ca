"""Read the totals back (SPEC §3 `tollway usage report`): JSON shapes and a table for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollway.usage import table
from tollway.usage.billing import render_amount
from tollway.usage.trueup import counted, unattributed_price


@dataclass(slots=True)
class RouteUsage:
    requests: int = 0
    units: int = 0


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
    # Units the quota counters admitted that no event (yet) attributed (tollway.usage.trueup);
    # included in `units` and `amount_nanos`.
    unattributed_units: int = 0
    counted: int | None = None  # the counter copies' units for the period; None: no counter

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "period": self.period,
            "plan": self.plan,
            "requests": self.requests,
            "rejected": self.rejected,
            "units": self.units,
            "amount_due": render_amount(self.amount_nanos),
            "currency": self.currency,
            "routes": {
                rid: {"requests": r.requests, "units": r.units} for rid, r in sorted(self.routes.items())
            },
            "unattributed_units": self.unattributed_units,
        }


def _n(item: dict[str, Any], name: str) -> int:
    return int(item[name]["N"]) if name in item else 0


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
            elif (route_id := table.route_of(sk, period)) is not None:
                usage.routes[route_id] = RouteUsage(_n(item, "requests"), _n(item, "units"))
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
        if usage.counted is None or usage.counted <= usage.units:
            return
        plan, micros = unattributed_price(copies)
        usage.unattributed_units = usage.counted - usage.units
        usage.units = usage.counted
        usage.amount_nanos += usage.unattributed_units * micros
        usage.plan = usage.plan or plan or None

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
    """The report for people: one line per consumer, then per route when there is one consumer."""
    consumers = report.get("consumers", [report])
    header = ("CONSUMER", "PLAN", "REQUESTS", "REJECTED", "UNITS", "AMOUNT DUE")
    rows = [header] + [
        (
            c["consumer"],
            c["plan"] or "-",
            str(c["requests"]),
            str(c["rejected"]),
            str(c["units"]),
            f"{c['amount_due']} {c['currency']}",
        )
        for c in consumers
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
