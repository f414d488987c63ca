"""DynamoDB throttles, fails or is gone: each route fails open or closed, never a 500."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import httpx
import pytest
from tollway.config.models import Plan
from tollway.dev.serve import free_port
from tollway.errors import ServiceUnavailable
from tollway.quota import limits
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import Budget, Exhausted, QuotaStore, StoreUnavailable
from tollway.tools.boto import BotoCaller

from .conftest import CLIENT_CONFIG, Clock, Dynamo, admit

PLANS = {
    "free": Plan.model_validate(
        {"rate": {"limit": 5, "per": "second"}, "quota": {"limit": 100, "per": "day"}}
    )
}
NOW = 1_795_000_000.5


class Faulty(BaseHTTPRequestHandler):
    """Answers DynamoDB calls with the error it was made with; after `failures` of them (when
    set), forwards the rest to `upstream`, a real DynamoDB emulator. `seen` holds each call's
    operation, in order."""

    status = 500
    code = "InternalServerError"
    failures: int | None = None
    upstream = ""
    delay_s = 0.0
    seen: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append(self.headers["x-amz-target"].rpartition(".")[2])
        if self.failures is not None and len(self.seen) > self.failures:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            time.sleep(self.delay_s)
            answer = httpx.post(self.upstream, content=body, headers=headers, trust_env=False)
            status, payload = answer.status_code, answer.content
        else:
            status = self.status
            error = {"__type": f"com.amazonaws.dynamodb.v20120810#{self.code}", "message": "injected"}
            payload = json.dumps(error).encode()
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Fault:
    url: str
    seen: list[str]


@contextmanager
def fault_server(**behaviour: Any) -> Iterator[Fault]:
    seen: list[str] = []
    handler = type("Handler", (Faulty,), {**behaviour, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Fault(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=[(500, "InternalServerError"), (400, "ThrottlingException")])
def faulty(request: pytest.FixtureRequest) -> Iterator[Fault]:
    with fault_server(status=request.param[0], code=request.param[1]) as fault:
        yield fault


def client_at(url: str) -> Any:
    """A boto3 client with one attempt: the tests inject failures and should see them at once."""
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", config=CLIENT_CONFIG)


def admission_at(container, url: str, **kwargs: Any) -> QuotaAdmission:
    return QuotaAdmission(QuotaStore(container(url).caller, "QuotaTable"), PLANS, now=Clock(NOW), **kwargs)


def emitted(capsys: pytest.CaptureFixture[str], name: str) -> int:
    """How many EMF records for metric `name` were written to stdout (CloudWatch Logs on Lambda)."""
    count = 0
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            names = [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            count += name in names
    return count


async def test_closed_route_answers_503_with_a_metric_and_a_log_line(
    faulty, container, consumer, exchange, caplog, capsys
) -> None:
    quota = admission_at(container, faulty.url)
    ex = exchange(consumer, "free", quota_failure="closed")
    with pytest.raises(ServiceUnavailable) as unavailable:
        await admit(quota, ex)
    assert faulty.seen == ["UpdateItem", "UpdateItem"]  # throttling and 5xx: retried once, not more
    assert unavailable.value.status == 503
    assert unavailable.value.headers["retry-after"] == "1"
    assert unavailable.value.headers["ratelimit-policy"] == '"rate";q=5;w=1, "quota";q=100;w=86400'
    assert not ex.admitted
    assert emitted(capsys, "QuotaStoreFailures") == 1
    [record] = [r for r in caplog.records if r.getMessage() == "quota store unavailable"]
    assert record.levelname == "WARNING" and record.quota_failure == "closed" and record.reason


async def test_open_route_admits_without_counting(faulty, container, consumer, exchange, capsys) -> None:
    quota = admission_at(container, faulty.url)
    ex = exchange(consumer, "free", cost=2, quota_failure="open")
    fields = await admit(quota, ex)
    assert ex.admitted and ex.cost_units == 2
    assert fields == {"ratelimit-policy": '"rate";q=5;w=1, "quota";q=100;w=86400'}
    assert emitted(capsys, "QuotaFailedOpen") == 1


async def test_unreachable_store_fails_closed(container, consumer, exchange) -> None:
    quota = admission_at(container, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable):
        await admit(quota, exchange(consumer, "free"))


async def test_missing_table_fails_closed(container, moto_dynamo: Dynamo, consumer, exchange) -> None:
    quota = QuotaAdmission(QuotaStore(container(moto_dynamo).caller, "NoSuchTable"), PLANS, now=Clock(NOW))
    with pytest.raises(ServiceUnavailable):
        await admit(quota, exchange(consumer, "free"))


async def test_throttled_store_fails_per_route_then_counting_resumes(
    container, moto_dynamo: Dynamo, consumer, exchange, capsys
) -> None:
    # Two admissions throttled (each call and its one retry), then the calls reach moto.
    with fault_server(
        status=400, code="ProvisionedThroughputExceededException", failures=4, upstream=moto_dynamo.url
    ) as throttling:
        quota = QuotaAdmission(
            QuotaStore(container(throttling.url).caller, moto_dynamo.table), PLANS, now=Clock(NOW)
        )
        with pytest.raises(ServiceUnavailable):
            await admit(quota, exchange(consumer, "free", quota_failure="closed"))
        opened = exchange(consumer, "free", quota_failure="open")
        await admit(quota, opened)
        assert opened.admitted
        # Once DynamoDB answers again, counting resumes from zero: nothing was spent meanwhile.
        ex = exchange(consumer, "free")
        fields = await admit(quota, ex)
    assert '"quota";r=99;' in fields["ratelimit"]
    assert throttling.seen == ["UpdateItem"] * 5
    assert emitted(capsys, "QuotaStoreFailures") == 2


async def test_the_round_trip_does_not_block_the_event_loop(
    container, moto_dynamo: Dynamo, consumer, exchange
) -> None:
    """While one request waits on DynamoDB, the container's other requests keep running."""
    with fault_server(failures=0, upstream=moto_dynamo.url, delay_s=0.3) as slow:
        quota = QuotaAdmission(
            QuotaStore(container(slow.url).caller, moto_dynamo.table), PLANS, now=Clock(NOW)
        )
        ticks = 0

        async def other_work() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(other_work())
        ex = exchange(consumer, "free")
        await admit(quota, ex)
        ticker.cancel()
    assert ex.admitted
    assert ticks >= 10  # ~30 in 0.3 s; a blocking call would allow none


async def test_the_boto3_caller_maps_answers_the_same_way(moto_dynamo: Dynamo, consumer, exchange) -> None:
    """`BotoCaller` (botocore, blocking: for tools, not the request path) gives the store the
    same errors: a failed condition with the old item, and unavailability by error code."""
    quota = QuotaAdmission(
        QuotaStore(BotoCaller(moto_dynamo.client()), moto_dynamo.table), PLANS, now=Clock(NOW)
    )
    for _ in range(5):
        await admit(quota, exchange(consumer, "free"))
    store = QuotaStore(BotoCaller(moto_dynamo.client()), moto_dynamo.table)
    window = limits.window(NOW, PLANS["free"].rate).attribute
    budget = Budget(f"{limits.period(NOW, 'day').key}#0#{consumer}", 0, quota=100, rate=5, window=window)
    with pytest.raises(Exhausted) as exhausted:
        await store.spend(budget, 1)
    assert exhausted.value.counters is not None and exhausted.value.counters.requests == 5
    with (
        fault_server(status=400, code="ThrottlingException") as throttling,
        pytest.raises(StoreUnavailable, match="ThrottlingException"),
    ):
        await QuotaStore(BotoCaller(client_at(throttling.url)), "QuotaTable").spend(budget, 1)
