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


def _add(sums: dict[str, int], item: dict[str, Any]) -> None:
    """Add a totals item's counters (every number but its expiry) into `sums`."""
    for name, value in item.items():
        if "N" in value and name != "expires_at":
            sums[name] = sums.get(name, 0) + int(value["N"])


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
        routes: dict[str, dict[str, int]] = {}
        for item in days:
            found = table.day_route_of(item["sk"]["S"])
            if found is not None:
                _add(routes.setdefault(found[1], {}), item)
        totals: dict[str, int] = {}
        if len(period) == 7:
            _add(totals, month)
        else:
            for counters in routes.values():
                for name, value in counters.items():
                    totals[name] = totals.get(name, 0) + value
        usage.plan = month.get("plan", {}).get("S") or None
        usage.currency = month.get("currency", {}).get("S", usage.currency)
        usage.requests = totals.get("requests", 0)
        usage.rejected = totals.get("rejected", 0)
        usage.units = totals.get("units", 0)
        usage.amount_nanos = totals.get("amount_nanos", 0)
        usage.routes = {
            route: RouteUsage(c.get("requests", 0), c.get("units", 0)) for route, c in routes.items()
        }
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
