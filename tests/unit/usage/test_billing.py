from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
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


def usage_event(consumer: str, route: str = "x") -> UsageEvent:
    import uuid

    return UsageEvent.model_validate(
        {
            "version": 1, "event_id": uuid.uuid4().hex, "timestamp": "2026-11-27T10:00:00+00:00",
            "request_id": "r", "consumer_id": consumer, "plan": "p", "route_id": route, "method": "GET",
            "status": 200, "latency_ms": 1, "request_bytes": 0, "response_bytes": 0, "cost_units": 1,
            "admitted": True, "backends": [],
        }
    )  # fmt: skip


def test_messages_are_packed_whole_into_transactions_of_at_most_100_items():
    from tollway.usage.billing import MAX_ITEMS, MessageKey, totals_keys, transactions

    # 60 bare events of 60 consumers: 3 items each (the EVENT# record, the day on the route, the month).
    bare = {MessageKey.of_event(f"e{i}"): [usage_event(f"c{i}")] for i in range(60)}
    packed = transactions(bare)
    assert [len(t) for t in packed] == [33, 27]
    # A message of 40 events of 40 consumers on 40 routes needs 81 items: never split.
    wide = {MessageKey("p", 0): [usage_event(f"c{i}", f"r{i}") for i in range(40)]}
    assert transactions(wide) == [[MessageKey("p", 0)]]
    items = {(k["pk"]["S"], k["sk"]["S"]) for e in wide[MessageKey("p", 0)] for k in totals_keys(e)}
    assert len(items) + 1 <= MAX_ITEMS
    # 1,000 one-event messages of one producer and consumer: 16 dedupe records, 2 totals items.
    narrow = {MessageKey("p", seq): [usage_event("c")] for seq in range(1000)}
    assert [len(t) for t in transactions(narrow)] == [1000]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p1", "p2", None]),
            st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), min_size=1, max_size=40),
        ),
        max_size=60,
    )
)
def test_packing_puts_every_message_in_one_transaction_of_at_most_100_items(shape):
    """Any batch: each message whole in exactly one transaction, in order, each within DynamoDB's limit."""
    from tollway.usage.billing import MAX_ITEMS, MessageKey, totals_keys, transactions

    messages = {}
    for seq, (producer, events) in enumerate(shape):
        key = MessageKey(producer, seq) if producer else MessageKey.of_event(f"e{seq}")
        events = events[:1] if producer is None else events  # a bare event is one event
        messages[key] = [usage_event(f"c{c}", f"r{r}") for c, r in events]
    packed = transactions(messages)
    assert [k for t in packed for k in t] == list(messages)
    for keys in packed:
        items = {k.record or k.event_id for k in keys}
        items |= {(t["pk"]["S"], t["sk"]["S"]) for k in keys for e in messages[k] for t in totals_keys(e)}
        assert len(items) <= MAX_ITEMS
