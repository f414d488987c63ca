from __future__ import annotations

import pytest
from tollway.usage.report import ConsumerUsage, RouteUsage, render_table
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
    )  # fmt: skip


def test_json_shape_is_the_spec():
    assert usage().to_json() == {
        "consumer": "acme", "period": "2026-11", "plan": "pro", "requests": 30, "rejected": 2, "units": 46,
        "amount_due": "0.023", "currency": "USD",
        "routes": {"items.get": {"requests": 26, "units": 26}, "reports.post": {"requests": 4, "units": 20}},
        "unattributed_units": 0,
    }  # fmt: skip


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
