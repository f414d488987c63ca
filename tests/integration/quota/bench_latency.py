"""The quota step's cost against a moto server on loopback: calls, capacity units, latency.

    uv run python -m tests.integration.quota.bench_latency

Not a test (pytest does not collect it): it prints medians over 500 calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from dataclasses import replace
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from tollway import aws
from tollway.auth.principal import Principal
from tollway.config.compile import compile_infra
from tollway.config.models import Plan
from tollway.dev.serve import free_port
from tollway.errors import TooManyRequests
from tollway.http.messages import Request
from tollway.pipeline import Exchange
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore

from tests.conftest import INFRA

N = 500
PLANS = {
    "big": Plan.model_validate(
        {"rate": {"limit": 100_000, "per": "minute"}, "quota": {"limit": 10**9, "per": "month"}}
    ),
    "tiny": Plan.model_validate(
        {"rate": {"limit": 1, "per": "minute"}, "quota": {"limit": 10**9, "per": "month"}}
    ),
}


def median_us(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:.0f} µs"


async def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client(
        "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", config=aws.HOT_PATH
    )
    client.create_table(
        TableName="QuotaTable",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    calls: list[str] = []
    units: list[float] = []

    def ask_capacity(params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def after(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        calls.append(model.name)
        units.append(parsed.get("ConsumedCapacity", {}).get("CapacityUnits", 0))

    client.meta.events.register("provide-client-params.dynamodb", ask_capacity)
    client.meta.events.register("after-call.dynamodb", after)
    route = replace(next(r for r in compile_infra(INFRA, "dev").routes if not r.public), cost=1)

    def exchange(plan: str, consumer: str) -> Exchange:
        request = Request("GET", "/", b"", {}, b"", "127.0.0.1", "http", "bench")
        principal = Principal(consumer, plan, frozenset(), "api_key")
        return Exchange(request, route, {}, time.monotonic(), principal=principal)

    async def timed(admission: QuotaAdmission, plan: str, consumer: str) -> list[float]:
        samples = []
        for _ in range(N):
            started = time.perf_counter()
            with contextlib.suppress(TooManyRequests):
                await admission.admit(exchange(plan, consumer))
            samples.append(time.perf_counter() - started)
        return samples

    first = QuotaAdmission(QuotaStore(client, "QuotaTable"), PLANS)
    consumer = uuid.uuid4().hex
    await timed(first, "big", consumer)  # warm-up
    calls.clear()
    units.clear()
    samples = await timed(first, "big", consumer)
    per_request = f"{len(calls) / N:.2f} calls and {sum(units) / N:.2f} capacity units (moto)"
    print(f"admitted: median {median_us(samples)}; {per_request} per request")

    limited = uuid.uuid4().hex
    await first.admit(exchange("tiny", limited))
    second = QuotaAdmission(QuotaStore(client, "QuotaTable"), PLANS)  # another container
    calls.clear()
    units.clear()
    try:
        await second.admit(exchange("tiny", limited))
    except TooManyRequests as rejected:
        print(f"first rejection in a container ({rejected.limit}): calls {calls}")
    calls.clear()
    samples = await timed(second, "tiny", limited)
    print(f"remembered rejections: median {median_us(samples)}; {len(calls) / N:.2f} calls per request")

    samples = []
    for _ in range(N):
        started = time.perf_counter()
        client.update_item(
            TableName="QuotaTable",
            Key={"pk": {"S": "reference"}},
            UpdateExpression="SET u = if_not_exists(u, :z) + :c",
            ConditionExpression="attribute_not_exists(u) OR u <= :q",
            ExpressionAttributeValues={":z": {"N": "0"}, ":c": {"N": "1"}, ":q": {"N": "1000000"}},
        )
        samples.append(time.perf_counter() - started)
    print(f"reference, a bare conditional UpdateItem: median {median_us(samples)}")
    server.stop()


if __name__ == "__main__":
    asyncio.run(main())
