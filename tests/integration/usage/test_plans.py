"""A bill per plan: a consumer who changed plans (or holds keys on two) is shown each plan's
requests, units and amount, in the report's JSON and table, on the moto server."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tollway import cli
from tollway.config.models import Plan
from tollway.functions.usage import build_handler
from tollway.usage import table
from tollway.usage.billing import Ledger, prices
from tollway.usage.events import UsageEvent
from tollway.usage.report import UsageReader

from .conftest import build_stack
from .test_pipeline import drain

PLANS = {
    "free": Plan.model_validate({"price": {"per_1000_units": 0}}),
    "pro": Plan.model_validate({"price": {"per_1000_units": 0.5}}),
    "open": Plan.model_validate({"price": {"per_1000_units": 1.0}}),
}
MICROS = {"free": 0, "pro": 500_000, "open": 1_000_000}
WHEN = datetime(2026, 11, 27, 12, tzinfo=UTC)


def event(consumer: str, plan: str, route: str = "items.get", units: int = 1, admitted: bool = True,
          status: int = 200) -> UsageEvent:  # fmt: skip
    return UsageEvent.model_validate(
        {
            "version": 1, "event_id": uuid.uuid4().hex, "timestamp": WHEN, "request_id": "r",
            "consumer_id": consumer, "plan": plan, "route_id": route, "method": "GET", "status": status,
            "latency_ms": 1, "request_bytes": 0, "response_bytes": 0, "cost_units": units,
            "admitted": admitted, "backends": [],
        }
    )  # fmt: skip


def report(capsys: pytest.CaptureFixture[str], usage_table: str, *args: str) -> Any:
    capsys.readouterr()
    assert cli.main(["usage", "report", "--table", usage_table, *args]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if "--json" in args else out.splitlines()


def test_a_consumer_on_two_plans_is_billed_per_plan_through_the_gateway(
    aws, infra, backend_url, serve, cleanup, capsys, monkeypatch, tmp_path
):
    """The issue's case: 4 units on one plan, 6 on another; one consumer, one bill, two plans."""
    import httpx

    monkeypatch.chdir(tmp_path)
    stack = build_stack(aws, infra, backend_url)
    with httpx.Client(base_url=serve(stack.app)) as http:
        for i in range(4):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
        for i in range(6):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:metered"}).status_code == 200
        # The plan that writes last is not the plan of the most units.
        assert http.get("/v1/items/9", headers={"x-api-key": "acme:pro"}).status_code == 200
    drain(stack, build_handler(stack.settings), cleanup)
    month = datetime.now(UTC).strftime("%Y-%m")
    got = report(capsys, aws["TOLLWAY_USAGE_TABLE"], "--period", month, "--consumer", "acme", "--json")
    assert got == {
        "consumer": "acme", "period": month, "plan": "metered", "requests": 11, "rejected": 0, "units": 11,
        "amount_due": "0.0043", "currency": "USD", "routes": {"items.get": {"requests": 11, "units": 11}},
        "plans": {"metered": {"requests": 6, "units": 6, "amount_due": "0.0018"},
                  "pro": {"requests": 5, "units": 5, "amount_due": "0.0025"}},
        "unattributed_units": 0,
    }  # fmt: skip
    assert report(capsys, aws["TOLLWAY_USAGE_TABLE"], "--period", month) == [
        f"period {month}",
        "CONSUMER  PLAN       REQUESTS  REJECTED  UNITS  AMOUNT DUE",
        "acme      2 plans          11         0     11  0.0043 USD",
        "            metered         6                6  0.0018 USD",
        "            pro             5                5  0.0025 USD",
    ]


def test_totals_written_before_the_split_are_reported_under_their_plan(aws, capsys):
    """Migration: an item the old code wrote (no per-plan counters) keeps its units on its `plan`."""
    import boto3

    dynamodb, usage_table = boto3.client("dynamodb"), aws["TOLLWAY_USAGE_TABLE"]
    for key in (table.totals_key("acme", "2026-11"), table.totals_key("acme", "2026-11", "items.get")):
        dynamodb.update_item(  # what Ledger.record wrote before: counters and the plan, nothing per plan
            TableName=usage_table,
            Key=key,
            UpdateExpression="ADD requests :r, units :u, amount_nanos :a, events :r"
            " SET #p = :p, currency = :c",
            ExpressionAttributeNames={"#p": "plan"},
            ExpressionAttributeValues={":r": {"N": "3"}, ":u": {"N": "7"}, ":a": {"N": "3500000"},
                                       ":p": {"S": "pro"}, ":c": {"S": "USD"}},
        )  # fmt: skip
    dynamodb.put_item(TableName=usage_table, Item=table.index_key("2026-11", "acme"))
    ledger = Ledger(dynamodb, usage_table, prices(PLANS))
    for _ in range(2):
        ledger.record(event("acme", "open", units=5))
    got = report(capsys, usage_table, "--period", "2026-11", "--consumer", "acme", "--json")
    assert (got["requests"], got["units"], got["amount_due"]) == (5, 17, "0.0135")
    assert got["plans"] == {
        "pro": {"requests": 3, "units": 7, "amount_due": "0.0035"},
        "open": {"requests": 2, "units": 10, "amount_due": "0.01"},
    }
    assert got["plan"] == "open"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(PLANS)),
            st.sampled_from(["items.get", "reports.post"]),
            st.integers(0, 9),
            st.sampled_from([(True, 200), (True, 502), (False, 429), (False, 403)]),
            st.booleans(),  # delivered twice
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_plans_add_up_to_the_totals_exactly(aws, draws):
    import boto3

    dynamodb, usage_table = boto3.client("dynamodb"), aws["TOLLWAY_USAGE_TABLE"]
    ledger = Ledger(dynamodb, usage_table, prices(PLANS))
    consumer = "c-" + uuid.uuid4().hex[:12]
    expected: dict[tuple[str, str], list[int]] = {}
    for plan, route, units, (admitted, status), twice in draws:
        e = event(consumer, plan, route, units, admitted, status)
        assert ledger.record(e) is True
        if twice:
            assert ledger.record(e) is False
        if admitted:
            counts = expected.setdefault((plan, route), [0, 0])
            counts[0] += 1
            counts[1] += units
    usage = UsageReader(dynamodb, usage_table).consumer(consumer, "2026-11")
    by_plan = {p for p, _ in expected}
    assert set(usage.plans) == by_plan
    for plan in by_plan:
        requests = sum(c[0] for (p, _), c in expected.items() if p == plan)
        units = sum(c[1] for (p, _), c in expected.items() if p == plan)
        assert (usage.plans[plan].requests, usage.plans[plan].units) == (requests, units)
        assert usage.plans[plan].amount_nanos == units * MICROS[plan]
    assert sum(p.requests for p in usage.plans.values()) == usage.requests
    assert sum(p.units for p in usage.plans.values()) == usage.units
    assert sum(p.amount_nanos for p in usage.plans.values()) == usage.amount_nanos
    for route_id, route in usage.routes.items():
        assert {p: (u.requests, u.units) for p, u in route.plans.items()} == {
            p: tuple(c) for (p, r), c in expected.items() if r == route_id
        }
    if by_plan:
        top = max(usage.plans.values(), key=lambda p: p.units).units
        assert usage.plans[usage.main_plan].units == top
