"""The usage records' layout: a batch's messages in as few transactions as fit, each item written
once; records written before issue 19 read back with the new ones."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tollway import aws as tollway_aws
from tollway.usage.billing import Ledger, MessageKey, Price
from tollway.usage.events import UsageEvent
from tollway.usage.report import UsageReader

from tests.bench.cost import before_record

PRICES = {"pro": Price(500_000, "USD")}


def event(consumer: str, route: str, day: str = "2026-11-27", units: int = 2) -> UsageEvent:
    return UsageEvent.model_validate(
        {
            "version": 1, "event_id": uuid.uuid4().hex, "timestamp": f"{day}T10:00:00+00:00",
            "request_id": "r", "consumer_id": consumer, "plan": "pro", "route_id": route,
            "method": "GET", "status": 200, "latency_ms": 1, "request_bytes": 0, "response_bytes": 0,
            "cost_units": units, "admitted": True, "backends": [],
        }
    )  # fmt: skip


class Recording:
    """The DynamoDB client, keeping each transaction's items."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.exceptions = client.exceptions
        self.transactions: list[list[dict[str, Any]]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> Any:  # noqa: N803
        self.transactions.append(TransactItems)
        return self.client.transact_write_items(TransactItems=TransactItems)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_batch_is_one_transaction_that_writes_each_item_once(aws):
    client = Recording(tollway_aws.client("dynamodb", config=None))
    ledger = Ledger(client, aws["TOLLWAY_USAGE_TABLE"], PRICES)
    producer = uuid.uuid4().hex
    # 100 messages of one event each, as routers on Lambda send them: two consumers, one route each.
    messages = {
        MessageKey(producer, seq): [event("ann" if seq % 2 else "bo", "items.get")] for seq in range(100)
    }
    result = ledger.record_batch(messages)
    assert len(result.recorded) == 100 and not result.failed
    (items,) = client.transactions
    kinds = sorted(next(iter(i.values()))["Key"]["sk"]["S"].split("#")[0] for i in items)
    # Two dedupe records (numbers 0-63 and 64-99); per consumer its day on the route and its month.
    assert kinds == ["DAY", "DAY", "MESSAGE", "MESSAGE", "MONTH", "MONTH"], kinds
    assert ledger.record_batch(messages).duplicates == set(messages)  # again: nothing written
    reader = UsageReader(client.client, aws["TOLLWAY_USAGE_TABLE"])
    for who in ("ann", "bo"):
        usage = reader.consumer(who, "2026-11")
        assert (usage.requests, usage.units, usage.amount_nanos) == (50, 100, 100 * 500_000)


def test_records_written_before_issue_19_read_back_with_the_new_ones(aws):
    client = tollway_aws.client("dynamodb", config=None)
    table = aws["TOLLWAY_USAGE_TABLE"]
    for e in [event("cy", "items.get", "2026-11-02"), event("cy", "reports.post", "2026-11-02", 5)]:
        before_record(client, table, e, "USD")  # the old per-event transaction: four totals items
    Ledger(client, table, PRICES).record_batch(
        {MessageKey("p", 0): [event("cy", "items.get", "2026-11-02"), event("cy", "items.get", "2026-11-03")]}
    )
    reader = UsageReader(client, table)
    month = reader.consumer("cy", "2026-11")
    assert (month.requests, month.units) == (4, 11)
    assert {r: (u.requests, u.units) for r, u in month.routes.items()} == {
        "items.get": (3, 6),
        "reports.post": (1, 5),
    }
    day = reader.consumer("cy", "2026-11-02")
    assert (day.requests, day.units, day.amount_nanos) == (3, 9, 9 * 500_000)
    assert {r: (u.requests, u.units) for r, u in day.routes.items()} == {
        "items.get": (2, 4),
        "reports.post": (1, 5),
    }


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deliveries=st.lists(st.lists(st.integers(0, 19), min_size=1, max_size=12), min_size=1, max_size=6),
    crash=st.sets(st.integers(0, 5)),
)
def test_any_order_of_deliveries_and_redeliveries_counts_each_message_once(aws, deliveries, crash):
    """20 messages of one producer over 2 consumers, delivered in arbitrary batches, again and
    again; some batches die after their commit (recorded, then delivered again): every
    message that arrived at least once is counted once."""
    client = tollway_aws.client("dynamodb", config=None)
    ledger = Ledger(client, aws["TOLLWAY_USAGE_TABLE"], PRICES)
    producer, consumers = uuid.uuid4().hex, [f"h-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    message = {
        seq: [event(consumers[seq % 2], f"r{seq % 3}", units=1 + seq % 5)] for seq in range(20)
    }
    arrived: set[int] = set()
    for n, batch in enumerate(deliveries):
        result = ledger.record_batch({MessageKey(producer, seq): message[seq] for seq in batch})
        assert not result.failed
        arrived |= set(batch)
        if n in crash:  # the invocation died after its commit: SQS delivers the batch again
            again = ledger.record_batch({MessageKey(producer, seq): message[seq] for seq in batch})
            assert again.duplicates == {MessageKey(producer, seq) for seq in batch}
    reader = UsageReader(client, aws["TOLLWAY_USAGE_TABLE"])
    for i, consumer in enumerate(consumers):
        mine = [seq for seq in arrived if seq % 2 == i]
        usage = reader.consumer(consumer, "2026-11")
        assert (usage.requests, usage.units) == (len(mine), sum(1 + seq % 5 for seq in mine))
        assert sum(r.units for r in usage.routes.values()) == usage.units
