"""The meter across the edges of its periods and plans, attacked through the real app (the shop:
real keys, quota counters, emitter and usage function on the moto server, under uvicorn).

Billing takes units from two records (docs/usage.md, "When a router dies"): the usage events,
by the period of their `timestamp`, and the quota counters, by the period admission counted
them in; it bills `max(attributed, counted)` per period. Both must put a request in the same
period, or a request near the end of a period is billed in both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
from tollway.dev.sqs_poller import start_poller
from tollway.settings import Settings
from tollway.usage.consumer import build_handler
from tollway.usage.report import UsageReader
from tollway.usage.trueup import build_true_up

from tests.meter import settled, wait_for
from tests.shop import SECRET, Shop, open_shop

from .conftest import queue_depth


@pytest.fixture
def shop(aws, serve, tmp_path, monkeypatch) -> Shop:
    return open_shop(aws, serve, tmp_path, monkeypatch)


def record_and_true_up(shop: Shop) -> None:
    """The usage function on the queue until it is empty, then one true-up: as deployed."""
    settings = Settings.from_environ({**shop.aws, "REFUSALS_JWT_SECRET": SECRET}, Path.cwd() / "infra")
    sqs = boto3.client("sqs")
    queue = shop.aws["TOLLWAY_USAGE_QUEUE_URL"]
    wait_for(lambda: shop.tee.pending() == 0, what="the emitter flushed")
    stop = start_poller(queue, build_handler(settings), sqs, retry_visibility_s=0)
    try:
        wait_for(lambda: queue_depth(sqs, queue) == 0, what="the queue drained")
    finally:
        stop()
    build_true_up(settings).run()


def next_month_start(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def test_a_request_admitted_after_the_month_turned_is_billed_once(shop: Shop) -> None:
    """The month ends while a request is on its way in (its body arriving, its key looked up):
    admission counts it in the new month's counter. Its usage event must be billed in the same
    month, or the old month bills the event and the new month bills the counter (the true-up's
    unattributed units): two charges for one request. The admission's clock is the one
    injected into the app's quota step, reading the new month's first instant."""
    now = datetime.now(UTC)
    turned = next_month_start(now).timestamp()
    started = time.time()
    shop.app.gateway.admission.now = lambda: turned + (time.time() - started)
    key = shop.key("month")
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        assert http.get("/v1/items/1", headers={"x-api-key": key}).status_code == 200
    settled(shop.app)
    record_and_true_up(shop)
    reader = UsageReader(boto3.client("dynamodb"), shop.aws["TOLLWAY_USAGE_TABLE"])
    months = [now.strftime("%Y-%m"), next_month_start(now).strftime("%Y-%m")]
    billed = {month: reader.consumer(shop.consumer, month).units for month in months}
    assert shop.used() == 2
    assert sum(billed.values()) == 2, billed  # counted once, billed once
    assert billed[months[1]] == 2, billed  # in the period its counter counted it
