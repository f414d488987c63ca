"""`tollway usage export`: a period's totals for a billing system, one row per consumer,
plan and route, as CSV or as JSON lines of CloudEvents 1.0 (JSON event format).

Each row is a snapshot of running totals, not an increment: exporting the same period again
after more usage gives rows with larger counts. A CloudEvent's `id` is a digest of its
source and row, so the same snapshot exported twice is the same event (CloudEvents: equal
`source` and `id` mean a duplicate) and a changed row is a new one; a consumer of the
stream keeps the latest `time` per `period`, `consumer`, `plan` and `route`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

from tollway.usage.billing import render_amount
from tollway.usage.report import UsageReader

COLUMNS = (
    "period", "consumer", "plan", "route", "requests", "units", "amount_due", "amount_nanos", "currency",
)  # fmt: skip
EVENT_TYPE = "tollway.usage.totals.v1"


@dataclass(frozen=True, slots=True)
class Row:
    period: str
    consumer: str
    plan: str
    route: str
    requests: int
    units: int
    amount_nanos: int
    currency: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "amount_due": render_amount(self.amount_nanos)}


# The route of the units no event attributed (tollway.usage.report's table says the same).
UNATTRIBUTED = "(unattributed)"


def rows(reader: UsageReader, period: str) -> Iterator[Row]:
    """Every consumer with usage in `period`, by consumer, route and plan (names in order)."""
    for consumer in reader.consumers(period):
        usage = reader.consumer(consumer, period)
        for route_id, route in sorted(usage.routes.items()):
            for plan, share in sorted(route.plans.items()):
                yield Row(
                    period, consumer, plan, route_id, share.requests, share.units, share.amount_nanos,
                    usage.currency,
                )  # fmt: skip
        if usage.unattributed_units:
            # Units the quota counters admitted that no event attributed (usage/trueup.py): billed
            # under the counter's plan, on no route, so that the rows add up to the bill.
            yield Row(
                period, consumer, usage.unattributed_plan, UNATTRIBUTED, 0, usage.unattributed_units,
                usage.unattributed_nanos, usage.currency,
            )  # fmt: skip


def write_csv(found: Iterable[Row], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in found:
        writer.writerow(row.to_json())
        count += 1
    return count


def cloud_event(row: Row, source: str, time: datetime) -> dict[str, Any]:
    """A CloudEvents 1.0 event (required: specversion, id, source, type) carrying one row."""
    data = row.to_json()
    digest = hashlib.sha256(json.dumps([source, data], sort_keys=True).encode()).hexdigest()
    return {
        "specversion": "1.0",
        "id": digest[:32],
        "source": source,
        "type": EVENT_TYPE,
        "subject": row.consumer,
        "time": time.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }


def write_jsonl(found: Iterable[Row], out: IO[str], source: str, time: datetime) -> int:
    count = 0
    for row in found:
        out.write(json.dumps(cloud_event(row, source, time), separators=(",", ":")) + "\n")
        count += 1
    return count
