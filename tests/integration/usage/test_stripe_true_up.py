"""What reaches Stripe when the bill takes units from the quota counters (the true-up), through
the real app: the shop under uvicorn (keys, counters, emitter, usage function on the moto
server), the push against the loopback Stripe (tests/stripe_fake.py).

The counter holds more than the bill will while requests are in flight (a metered request's
reservation, until its settle), and its units not yet attributed can be attributed later to
another plan (a late event). A meter event cannot be taken back: Stripe must never be sent
units the final bill does not have.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx
import orjson
import pytest
from tollway.config.compile import compile_infra
from tollway.usage.customers import StripeCustomers
from tollway.usage.push import FINAL_AFTER_S, StripePush, month_bounds
from tollway.usage.report import UsageReader
from tollway.usage.stripe_meter import StripeMeterEvents

from tests.meter import Tee, settled, used, wait_for
from tests.shop import PLANS, SECRET, Shop, open_shop
from tests.stripe_fake import FakeStripe

from .test_meter_boundaries import get, lose_events, record_and_true_up

KEY = "sk_test_fake0123456789"
STRIPED = PLANS + """\
  gold: {quota: {limit: 100000, per: month}, price: {per_1000_units: 0.5}, stripe: {meter: api_requests}}
  silver: {quota: {limit: 100000, per: month}, price: {per_1000_units: 0.2}, stripe: {meter: tokens}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stripe(clock: Clock):
    server = FakeStripe(api_key=KEY, clock=clock).start()
    yield server
    server.stop()


@pytest.fixture
def shop(aws, serve, tmp_path, monkeypatch) -> Shop:
    shop = open_shop(aws, serve, tmp_path, monkeypatch, plans=STRIPED)
    StripeCustomers(boto3.client("dynamodb"), aws["TOLLWAY_USAGE_TABLE"]).set(shop.consumer, "cus_acme")
    return shop


def push(shop: Shop, stripe: FakeStripe, clock: Clock) -> list[str]:
    plans = compile_infra(Path.cwd() / "infra", "dev", {"REFUSALS_JWT_SECRET": SECRET}).plans
    sender = StripeMeterEvents(KEY, api_base=stripe.url, max_network_retries=0)
    pusher = StripePush(boto3.client("dynamodb"), shop.aws["TOLLWAY_USAGE_TABLE"], plans, sender, clock)
    return pusher.run(datetime.now(UTC).strftime("%Y-%m"), [shop.consumer]).problems


def sent(stripe: FakeStripe) -> int:
    return sum(int(e["payload"]["value"]) for e in stripe.accepted)


def month_closed(clock: Clock) -> None:
    """The clock moves to the month's end plus the time its counters take to be final."""
    clock.now = month_bounds(datetime.now(UTC).strftime("%Y-%m"))[1] + FINAL_AFTER_S + 1


def test_a_reservation_in_flight_is_never_pushed_to_stripe(shop: Shop, stripe: FakeStripe, clock: Clock):
    """A metered stream has reserved 40 units and will cost 10. The true-up copies the counter
    while it runs (40 unattributed: no event yet), and the push runs before the next true-up:
    the reservation must not reach Stripe, which cannot give it back after the settle."""
    key = shop.key("gold")
    answers: list[httpx.Response] = []

    def stream() -> None:
        reply = {"stream": True, "usage": 10, "end": "hold", "hold_s": 1.5}
        with httpx.Client(base_url=shop.url, timeout=10) as http:
            answers.append(http.post("/v1/chat", json={"reply": reply}, headers={"x-api-key": key}))

    caller = threading.Thread(target=stream)
    caller.start()
    dynamodb = boto3.client("dynamodb")
    wait_for(lambda: used(dynamodb, shop.aws["TOLLWAY_QUOTA_TABLE"], shop.consumer) == 40, what="reserved")
    record_and_true_up(shop)  # the copy holds the reservation
    push(shop, stripe, clock)
    caller.join()
    assert answers[0].status_code == 200
    settled(shop.app)
    record_and_true_up(shop)
    assert push(shop, stripe, clock) == []
    month_closed(clock)
    assert push(shop, stripe, clock) == []
    reader = UsageReader(dynamodb, shop.aws["TOLLWAY_USAGE_TABLE"])
    assert reader.consumer(shop.consumer, datetime.now(UTC).strftime("%Y-%m")).units == 10
    assert sent(stripe) == 10, stripe.accepted


def test_units_of_lost_events_reach_stripe_once_the_month_is_final(
    shop: Shop, stripe: FakeStripe, clock: Clock
):
    """Every event of three requests dies with its router: the counter's 6 units are billed
    (the true-up), and pushed once the month's counters are final, dated in the month."""
    key = shop.key("gold")
    lose_events(shop)
    get(shop, key, 3)
    record_and_true_up(shop)
    assert push(shop, stripe, clock) == []
    assert sent(stripe) == 0  # still the month: what the counter holds beyond the events may settle
    month_closed(clock)
    assert push(shop, stripe, clock) == []
    assert sent(stripe) == 6
    (event,) = stripe.accepted
    assert int(event["timestamp"]) == month_bounds(datetime.now(UTC).strftime("%Y-%m"))[1] - 1
    assert push(shop, stripe, clock) == [] and sent(stripe) == 6


def test_units_a_late_event_moves_to_another_plan_are_not_pushed_twice(
    shop: Shop, stripe: FakeStripe, clock: Clock
):
    """gold 2 requests (recorded), silver 3 (their events late: in the DLQ, say), gold 1 more:
    the counter's 12 units, 6 of them unattributed and priced at gold (the counter's last plan),
    are pushed to gold's meter once the month is final. Then the silver events arrive: those 6
    units are silver's now, but Stripe already has them, under gold: they must not be sent
    again to silver's meter."""
    gold, silver = shop.key("gold"), shop.key("silver")
    get(shop, gold, 2)
    real = shop.tee
    late = lose_events_keeping(shop)
    get(shop, silver, 3)
    shop.app.gateway.usage = shop.tee = real
    get(shop, gold, 1)
    record_and_true_up(shop)
    month_closed(clock)
    assert push(shop, stripe, clock) == []
    assert sent(stripe) == 12
    redrive(shop, late.events)
    record_and_true_up(shop)
    reader = UsageReader(boto3.client("dynamodb"), shop.aws["TOLLWAY_USAGE_TABLE"])
    usage = reader.consumer(shop.consumer, datetime.now(UTC).strftime("%Y-%m"))
    assert (usage.units, usage.unattributed_units) == (12, 0)
    (problem,) = push(shop, stripe, clock)  # gold's 6 units too many: a problem for a person
    assert f"{shop.consumer} on gold: Stripe holds 12 units, usage counts 6" in problem
    assert sent(stripe) == 12, stripe.accepted


def lose_events_keeping(shop: Shop) -> Tee:
    lose_events(shop)
    return shop.tee


def redrive(shop: Shop, events: list[dict]) -> None:
    """The late events reach the queue (a DLQ redrive), as one message of a router of old."""
    body = {"version": 1, "producer": "late", "seq": 0, "events": events}
    queue = shop.aws["TOLLWAY_USAGE_QUEUE_URL"]
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=orjson.dumps(body).decode())

