from __future__ import annotations

from datetime import datetime

import pytest
from tollway.config.models import Plan
from tollway.usage.billing import Price, counts, price_of, render_amount
from tollway.usage.events import UsageEvent


def plan(price: float) -> Plan:
    return Plan.model_validate({"price": {"per_1000_units": price}})


@pytest.mark.parametrize(
    ("price", "micros"),
    [(0, 0), (0.5, 500_000), (0.1, 100_000), (0.3, 300_000), (1.23, 1_230_000), (0.000001, 1)],
)
def test_prices_become_exact_micro_units(price, micros):
    assert price_of(plan(price)) == Price(micros, "USD")


def test_no_float_drift_over_many_events():
    price = price_of(plan(0.1))
    event = UsageEvent.model_validate(
        {
            "version": 1, "event_id": "e", "timestamp": datetime(2026, 11, 27), "request_id": "r",
            "consumer_id": "c", "plan": "p", "route_id": "x", "method": "GET", "status": 200,
            "latency_ms": 1, "request_bytes": 0, "response_bytes": 0, "cost_units": 3, "admitted": True,
            "backends": [],
        }
    )  # fmt: skip
    nanos = sum(counts(event, price).amount_nanos for _ in range(100_000))
    assert render_amount(nanos) == "30.00"
    assert sum(0.1 * 3 / 1000 for _ in range(100_000)) != 30.0  # what floats would have billed


@pytest.mark.parametrize(
    ("nanos", "text"),
    [(0, "0.00"), (500_000_000, "0.50"), (23_000_000, "0.023"), (1_500, "0.000002"), (1_499, "0.000001"),
     (12_000_000_000, "12.00"), (123_456_789_000, "123.456789")],
)  # fmt: skip
def test_amounts_render_as_decimal_strings(nanos, text):
    assert render_amount(nanos) == text


@pytest.mark.parametrize(
    ("admitted", "status", "expected"),
    [(True, 200, (1, 0, 5)), (True, 502, (1, 0, 5)), (False, 429, (0, 1, 0)), (False, 403, (0, 1, 0)),
     (False, 401, (0, 0, 0))],
)  # fmt: skip
def test_counts(admitted, status, expected):
    event = UsageEvent.model_validate(
        {
            "version": 1, "event_id": "e", "timestamp": "2026-11-27T23:59:59.999+00:00", "request_id": "r",
            "consumer_id": "c", "plan": "p", "route_id": "x", "method": "GET", "status": status,
            "latency_ms": 1, "request_bytes": 0, "response_bytes": 0, "cost_units": 5, "admitted": admitted,
            "backends": [],
        }
    )  # fmt: skip
    c = counts(event, Price(500_000, "USD"))
    assert (c.requests, c.rejected, c.units) == expected
    assert c.amount_nanos == expected[2] * 500_000
    assert (event.day, event.month) == ("2026-11-27", "2026-11")
