"""Busy consumers: usage-function invocations at once on events of one consumer (issue 19, item 4).

Each "invocation" is the usage function's handler given an SQS event of its own, on a
thread of its own, all at once, against a DynamoDB emulator behind `tests.dynamo_front`
(which cancels a transaction that meets another in progress, as DynamoDB does). The
outcome must be exact: no message reported failed (a failure is a redelivery, and five
make a DLQ entry), every event counted once, copies of messages delivered to other
invocations at the same time counted once.

`make test` runs a short campaign; `make fuzz` (TOLLWAY_FUZZ_EXAMPLES=2000) a long one.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from tollway.dev.template import read_template
from tollway.usage.billing import Ledger, Price
from tollway.usage.consumer import UsageConsumer
from tollway.usage.table import totals_key

from tests.conftest import TEMPLATE
from tests.dynamo_front import DynamoFront
from tests.integration.quota.conftest import dynalite_url  # noqa: F401 - the session's dynalite

LONG = int(os.environ.get("TOLLWAY_FUZZ_EXAMPLES", "100")) >= 1000
THREADS = 8 if LONG else 4
BATCHES = 12 if LONG else 3  # per thread
MESSAGES = 25 if LONG else 10  # per batch
PRICES = {"pro": Price(500_000, "USD")}
DAY = "2026-11-27"


@dataclass
class Store:
    name: str
    front: DynamoFront
    client: Any
    table: str


@pytest.fixture(params=["moto", "dynalite"])
def store(request: pytest.FixtureRequest, serve: Callable[..., str]) -> Iterator[Store]:
    if request.param == "moto":
        env = request.getfixturevalue("aws")
        front = DynamoFront(request.getfixturevalue("moto_url"), transactions="native")
        table = env["TOLLWAY_USAGE_TABLE"]
    else:
        url = request.getfixturevalue("dynalite_url")
        front = DynamoFront(url, transactions="emulated")
        table = f"UsageTable-{uuid.uuid4().hex[:8]}"
        usage = read_template(TEMPLATE)["Resources"]["UsageTable"]["Properties"]
        boto3.client("dynamodb", endpoint_url=url).create_table(
            TableName=table,
            AttributeDefinitions=usage["AttributeDefinitions"],
            KeySchema=usage["KeySchema"],
            BillingMode="PAY_PER_REQUEST",
        )
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=THREADS * 2)
    client = boto3.client("dynamodb", endpoint_url=serve(front), config=config)
    yield Store(request.param, front, client, table)


def event(consumer: str, route: str, units: int, status: int = 200) -> dict[str, Any]:
    return {
        "version": 1, "event_id": uuid.uuid4().hex, "timestamp": f"{DAY}T10:00:00.000+00:00",
        "request_id": uuid.uuid4().hex, "consumer_id": consumer, "plan": "pro", "route_id": route,
        "method": "GET", "status": status, "latency_ms": 1.0, "request_bytes": 0, "response_bytes": 2,
        "cost_units": units, "admitted": status < 400, "backends": [],
    }  # fmt: skip


def sqs_event(bodies: list[bytes]) -> dict[str, Any]:
    # The usage function reads only messageId, body and (for its logs) the receive count.
    return {
        "Records": [
            {"messageId": uuid.uuid4().hex, "body": b.decode(), "attributes": {}}
            for b in bodies
        ]
    }


def messages(consumer: str, form: str, count: int, producer: str) -> tuple[list[bytes], int, int]:
    """`count` messages of one consumer, as routers on Lambda send them (one event each) or bare
    (as routers before messages did); with the units and requests they hold."""
    bodies, units, requests = [], 0, 0
    for seq in range(count):
        one = event(consumer, f"route-{seq % 3}", 1 + seq % 4, 429 if seq % 7 == 6 else 200)
        units += one["cost_units"] if one["admitted"] else 0
        requests += int(one["admitted"])
        if form == "bare":
            bodies.append(orjson.dumps(one))
        else:
            bodies.append(orjson.dumps({"version": 1, "producer": producer, "seq": seq, "events": [one]}))
    return bodies, units, requests


def run_at_once(handler: Callable[..., dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = threading.Barrier(len(events))
    answers: list[Any] = [None] * len(events)

    def invoke(i: int) -> None:
        start.wait()
        answers[i] = handler(events[i], None)

    threads = [threading.Thread(target=invoke, args=(i,)) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 if not LONG else 600)
    return answers


def month_totals(store: Store, consumer: str) -> dict[str, int]:
    item = store.client.get_item(
        TableName=store.table, Key=totals_key(consumer, DAY[:7]), ConsistentRead=True
    ).get("Item", {})
    return {k: int(v["N"]) for k, v in item.items() if "N" in v}


@pytest.mark.timeout(900 if LONG else 120)
@pytest.mark.parametrize("form", ["messages", "bare"])
def test_parallel_batches_of_one_consumer_are_counted_exactly_and_none_fails(store: Store, form: str):
    consumer = f"hot-{uuid.uuid4().hex[:8]}"
    handler = UsageConsumer(Ledger(store.client, store.table, PRICES)).handle
    for _ in range(BATCHES):
        batches, units, requests = [], 0, 0
        for _ in range(THREADS):
            bodies, u, r = messages(consumer, form, MESSAGES, uuid.uuid4().hex)
            batches.append(sqs_event(bodies))
            units, requests = units + u, requests + r
        expected = month_totals(store, consumer)
        answers = run_at_once(handler, batches)
        assert [a["batchItemFailures"] for a in answers] == [[]] * THREADS, "a message would be redelivered"
        totals = month_totals(store, consumer)
        assert totals["units"] - expected.get("units", 0) == units
        assert totals["requests"] - expected.get("requests", 0) == requests
        assert totals["events"] - expected.get("events", 0) == THREADS * MESSAGES
        assert totals["amount_nanos"] - expected.get("amount_nanos", 0) == units * 500_000
    # The emulator front did cancel transactions for conflicts: contention was there to handle.
    print(f"{store.name} {form}: {THREADS} invocations at once x {BATCHES}: {dict(store.front.stats)}")
    assert store.front.stats["conflicts"] > 0, store.front.stats


@pytest.mark.timeout(900 if LONG else 120)
def test_copies_delivered_to_invocations_at_once_count_once(store: Store):
    """SQS delivers at least once: the same messages reach several invocations at the same time."""
    consumer = f"dup-{uuid.uuid4().hex[:8]}"
    handler = UsageConsumer(Ledger(store.client, store.table, PRICES)).handle
    bodies, units, requests = messages(consumer, "messages", MESSAGES * BATCHES, uuid.uuid4().hex)
    copies = [sqs_event(bodies[i::2] + bodies[(i + 1) % 2 :: 2][: len(bodies) // 4]) for i in range(2)] * (
        THREADS // 2
    )
    answers = run_at_once(handler, copies)
    assert [a["batchItemFailures"] for a in answers] == [[]] * len(copies)
    totals = month_totals(store, consumer)
    assert (totals["units"], totals["requests"], totals["events"]) == (units, requests, len(bodies))
