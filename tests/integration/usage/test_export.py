"""`tollway usage export`: one row per consumer, plan and route, as CSV and as CloudEvents
1.0 JSON lines, from the totals on the moto server."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from tollway import cli
from tollway.config.models import Plan
from tollway.usage.billing import Ledger, prices
from tollway.usage.events import UsageEvent

PLANS = {
    "free": Plan.model_validate({"price": {"per_1000_units": 0}}),
    "pro": Plan.model_validate({"price": {"per_1000_units": 0.5}}),
    "open": Plan.model_validate({"price": {"per_1000_units": 1.0}}),
}
WHEN = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.fixture
def ledger(aws: dict[str, str]) -> Ledger:
    ledger = Ledger(boto3.client("dynamodb"), aws["TOLLWAY_USAGE_TABLE"], prices(PLANS))

    def add(consumer: str, plan: str, route: str, units: int, times: int) -> None:
        for _ in range(times):
            ledger.record(
                UsageEvent.model_validate(
                    {
                        "version": 1, "event_id": uuid.uuid4().hex, "timestamp": WHEN, "request_id": "r",
                        "consumer_id": consumer, "plan": plan, "route_id": route, "method": "GET",
                        "status": 200, "latency_ms": 1, "request_bytes": 0, "response_bytes": 0,
                        "cost_units": units, "admitted": True, "backends": [],
                    }
                )
            )  # fmt: skip

    add("acme", "pro", "items.get", 1, 26)
    add("acme", "pro", "reports.post", 5, 4)
    add("acme", "open", "items.get", 1, 6)  # changed plans
    add("beta", "free", "items.get", 1, 7)
    ledger.add = add  # type: ignore[attr-defined]
    return ledger


def export(capsys: pytest.CaptureFixture[str], table: str, *args: str) -> str:
    capsys.readouterr()
    assert cli.main(["usage", "export", "--table", table, *args]) == 0
    return capsys.readouterr().out


def test_csv_has_one_row_per_consumer_plan_and_route(ledger, capsys):
    out = export(capsys, ledger.table, "--period", "2026-11")
    assert out.splitlines() == [
        "period,consumer,plan,route,requests,units,amount_due,amount_nanos,currency",
        "2026-11,acme,open,items.get,6,6,0.006,6000000,USD",
        "2026-11,acme,pro,items.get,26,26,0.013,13000000,USD",
        "2026-11,acme,pro,reports.post,4,20,0.01,10000000,USD",
        "2026-11,beta,free,items.get,7,7,0.00,0,USD",
    ]
    assert export(capsys, ledger.table, "--period", "2026-11-27", "--format", "csv").splitlines()[1:] == [
        line.replace("2026-11,", "2026-11-27,", 1) for line in out.splitlines()[1:]
    ]
    rows = list(csv.DictReader(io.StringIO(out)))  # the rows add up to the report's totals
    assert sum(int(r["amount_nanos"]) for r in rows if r["consumer"] == "acme") == 29_000_000


def test_jsonl_lines_are_cloudevents(ledger, capsys):
    lines = export(capsys, ledger.table, "--period", "2026-11", "--format", "jsonl").splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 4
    for event in events:
        # CloudEvents 1.0: specversion, id, source and type are required; time is RFC 3339.
        assert event["specversion"] == "1.0"
        assert re.fullmatch(r"[0-9a-f]{32}", event["id"])
        assert event["source"] == f"/tollway/usage/{ledger.table}"
        assert event["type"] == "tollway.usage.totals.v1"
        assert event["datacontenttype"] == "application/json"
        assert datetime.fromisoformat(event["time"].replace("Z", "+00:00")).tzinfo is not None
        assert event["subject"] == event["data"]["consumer"]
    assert events[2]["data"] == {
        "period": "2026-11", "consumer": "acme", "plan": "pro", "route": "reports.post", "requests": 4,
        "units": 20, "amount_nanos": 10_000_000, "amount_due": "0.01", "currency": "USD",
    }  # fmt: skip
    assert len({e["id"] for e in events}) == 4

    # The same totals again: the same ids (duplicates); a changed row: a new id.
    ledger.add("beta", "free", "items.get", 1, 1)
    source = f"/tollway/usage/{ledger.table}"
    out = export(capsys, ledger.table, "--period", "2026-11", "--format", "jsonl", "--source", source)
    again = [json.loads(line) for line in out.splitlines()]
    assert [e["id"] for e in again[:3]] == [e["id"] for e in events[:3]]
    assert again[3]["id"] != events[3]["id"] and again[3]["data"]["units"] == 8


def test_a_bad_period_is_one_line_and_exit_2(ledger, capsys):
    assert cli.main(["usage", "export", "--table", ledger.table, "--period", "2026-13"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tollway usage export: ") and err.count("\n") == 1
    assert "period must be YYYY-MM or YYYY-MM-DD, not '2026-13'" in err
