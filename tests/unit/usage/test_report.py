from __future__ import annotations

import pytest
from tollway.usage.report import ConsumerUsage, PlanUsage, RouteUsage, plan_split, render_table
from tollway.usage.table import period_sk as period_key


@pytest.mark.parametrize(("period", "key"), [("2026-11", "MONTH#2026-11"), ("2026-11-27", "DAY#2026-11-27")])
def test_period_keys(period, key):
    assert period_key(period) == key


@pytest.mark.parametrize("period", ["2026", "2026-13", "2026-11-32", "26-11", "2026-11-27#x", ""])
def test_bad_periods_are_refused(period):
    with pytest.raises(ValueError, match="YYYY-MM"):
        period_key(period)


def usage() -> ConsumerUsage:
    return ConsumerUsage(
        "acme", "2026-11", "pro", 30, 2, 46, 23_000_000, "USD",
        {"reports.post": RouteUsage(4, 20), "items.get": RouteUsage(26, 26)},
        {"pro": PlanUsage(30, 46, 23_000_000)},
    )  # fmt: skip


def test_json_shape_is_the_spec_with_a_plans_object():
    assert usage().to_json() == {
        "consumer": "acme", "period": "2026-11", "plan": "pro", "requests": 30, "rejected": 2, "units": 46,
        "amount_due": "0.023", "currency": "USD",
        "routes": {"items.get": {"requests": 26, "units": 26}, "reports.post": {"requests": 4, "units": 20}},
        "plans": {"pro": {"requests": 30, "units": 46, "amount_due": "0.023"}},
        "unattributed_units": 0,
    }  # fmt: skip


def n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def test_plan_split_reads_the_per_plan_counters():
    item = {
        "plan": {"S": "pro"}, "requests": n(10), "units": n(10), "amount_nanos": n(8_000_000),
        "plan#pro#requests": n(4), "plan#pro#units": n(4), "plan#pro#amount_nanos": n(2_000_000),
        "plan#open#requests": n(6), "plan#open#units": n(6), "plan#open#amount_nanos": n(6_000_000),
        "rejected": n(3), "events": n(13), "currency": {"S": "USD"},
    }  # fmt: skip
    assert plan_split(item) == {"pro": PlanUsage(4, 4, 2_000_000), "open": PlanUsage(6, 6, 6_000_000)}


def test_totals_written_before_the_split_are_reported_under_their_plan():
    legacy = {"plan": {"S": "free"}, "requests": n(7), "units": n(9), "amount_nanos": n(0)}
    assert plan_split(legacy) == {"free": PlanUsage(7, 9, 0)}
    # Written before and after: the counters hold only the later part; the rest is the stored plan's.
    mixed = {**legacy, "requests": n(10), "units": n(14), "amount_nanos": n(2_500_000),
             "plan#pro#requests": n(3), "plan#pro#units": n(5),
             "plan#pro#amount_nanos": n(2_500_000)}  # fmt: skip
    assert plan_split(mixed) == {"free": PlanUsage(7, 9, 0), "pro": PlanUsage(3, 5, 2_500_000)}
    # The same plan before and after: one share.
    same = {**legacy, "requests": n(10), "units": n(14),
            "plan#free#requests": n(3), "plan#free#units": n(5), "plan#free#amount_nanos": n(0)}  # fmt: skip
    assert plan_split(same) == {"free": PlanUsage(10, 14, 0)}
    # Only refusals (no admitted request): no plan's share at all.
    assert plan_split({"plan": {"S": "free"}, "rejected": n(2), "events": n(2)}) == {}


@pytest.mark.parametrize(
    ("plans", "main"),
    [({"pro": PlanUsage(4, 4), "open": PlanUsage(6, 6)}, "open"),   # the most units
     ({"pro": PlanUsage(9, 6), "open": PlanUsage(2, 6)}, "pro"),    # then the most requests
     ({"pro": PlanUsage(2, 6), "open": PlanUsage(2, 6)}, "open"),   # then the first by name
     ({}, "stored")],                                               # no admitted request: the stored plan
)  # fmt: skip
def test_the_reported_plan_is_the_plan_of_the_most_units(plans, main):
    assert ConsumerUsage("acme", "2026-11", "stored", plans=plans).to_json()["plan"] == main


def test_table_shows_each_plan_of_a_consumer_of_several():
    two = ConsumerUsage(
        "acme", "2026-11", "pro", 10, 1, 10, 8_000_000, "USD",
        plans={"pro": PlanUsage(4, 4, 2_000_000), "open": PlanUsage(6, 6, 6_000_000)},
    ).to_json()  # fmt: skip
    one = usage().to_json()
    assert render_table({"period": "2026-11", "consumers": [two, one]}).splitlines() == [
        "period 2026-11",
        "CONSUMER  PLAN     REQUESTS  REJECTED  UNITS  AMOUNT DUE",
        "acme      2 plans        10         1     10   0.008 USD",
        "            open          6                6   0.006 USD",
        "            pro           4                4   0.002 USD",
        "acme      pro            30         2     46   0.023 USD",
    ]


def test_table_for_one_consumer_lists_routes():
    assert render_table(usage().to_json()).splitlines() == [
        "period 2026-11",
        "CONSUMER  PLAN  REQUESTS  REJECTED  UNITS  AMOUNT DUE",
        "acme      pro         30         2     46   0.023 USD",
        "",
        "ROUTE         REQUESTS  UNITS",
        "items.get           26     26",
        "reports.post         4     20",
    ]


def test_empty_period():
    assert render_table({"period": "2026-01", "consumers": []}).splitlines()[-1] == "(no usage)"


def test_units_no_event_attributed_are_a_line_of_their_own():
    report = usage().to_json() | {"units": 49, "unattributed_units": 3}
    assert render_table(report).splitlines()[-1] == "(unattributed)         -      3"
