"""Compare the units the quota counters admitted with the units billed (`tollway usage reconcile`).

QuotaTable (tollway/quota/store.py, which alone writes and parses its keys) keeps, per
consumer, counter period and shard, an item whose `used` is the units admitted in that
period. Billing keeps the units of admitted events, and bills what the counters' copies
hold beyond them (`unattributed`, tollway.usage.trueup). They differ when the true-up has
not run since the counters last moved (billed < counted: it runs every few minutes), or
when requests were admitted without a counter (a route that fails open while the quota
store is down: billed > counted). `unattributed` units are billed but were attributed by no
event: events still queued or in the DLQ, or lost with a router that died.

A day is comparable for consumers whose counters are daily, a month for all (monthly
counters, or the sum of daily ones). Counters expire a day after their period ends, so
reconcile a period before then; plans with neither rate nor quota keep no counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.quota.store import counts_towards, parse_counter_pk
from tollway.usage.report import UsageReader
from tollway.usage.table import period_sk


@dataclass(slots=True)
class Row:
    consumer: str
    counted: int | None  # None: no counters comparable with this period
    billed: int
    unattributed: int = 0  # of `billed`

    @property
    def difference(self) -> int:
        return 0 if self.counted is None else self.billed - self.counted

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "quota_units": self.counted,
            "billed_units": self.billed,
            "difference": self.difference,
            "unattributed_units": self.unattributed,
        }


def counted_units(dynamodb: Any, quota_table: str, period: str) -> dict[str, int]:
    """Admitted units per consumer in `period`, summed over shards (and over days for a month)."""
    totals: dict[str, int] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=quota_table, ConsistentRead=True):
        for item in page["Items"]:
            pk = item["pk"]["S"]
            if "used" not in item or not counts_towards(period, pk):
                continue
            consumer = parse_counter_pk(pk)[2]
            totals[consumer] = totals.get(consumer, 0) + int(item["used"]["N"])
    return totals


def reconcile(
    dynamodb: Any, usage_table: str, quota_table: str, period: str, consumer: str | None = None
) -> list[Row]:
    period_sk(period)
    counted = counted_units(dynamodb, quota_table, period)
    reader = UsageReader(dynamodb, usage_table)
    consumers = [consumer] if consumer else sorted(set(reader.consumers(period)) | set(counted))
    rows = []
    for c in consumers:
        usage = reader.consumer(c, period)
        rows.append(Row(c, counted.get(c), usage.units, usage.unattributed_units))
    return rows


def render(period: str, rows: list[Row]) -> str:
    table = [("CONSUMER", "QUOTA UNITS", "BILLED UNITS", "DIFFERENCE", "UNATTRIBUTED")] + [
        (
            r.consumer,
            "-" if r.counted is None else str(r.counted),
            str(r.billed),
            f"{r.difference:+d}",
            str(r.unattributed),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = [f"period {period}"] + [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    differing = sum(1 for r in rows if r.difference)
    lines.append(f"{differing} consumer(s) differ" if differing else "all consumers match")
    return "\n".join(lines)
