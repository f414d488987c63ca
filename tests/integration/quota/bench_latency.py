"""The quota step's cost against a moto server on loopback: CPU and latency per admission.

    uv run python -m tests.integration.quota.bench_latency [N]

Not a test (pytest does not collect it). moto runs as a child process, so its CPU is not
counted here, behind uvicorn, so that calls reuse their connection as DynamoDB's do
(werkzeug, moto's own server, closes every connection after one answer). One event loop,
one container per path, all on the same moto:

    boto3        the store on `BotoCaller`: botocore, blocking (the path before tollway.aws.dynamodb)
    lean         the store on `DynamoCaller` on the container's exchanger (aiohttp)
    lean-httpx   the same through httpx's own transport (tests/exchangers.py `HttpxExchanger`)

N admissions per path (default 2,000) in interleaved rounds; CPU is `time.process_time`
per admission (median of the rounds), latency the median admission's wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

import boto3
from tollway import aws
from tollway.aws.dynamodb import Caller
from tollway.config.compile import compile_infra
from tollway.config.models import Plan
from tollway.core.context import Context
from tollway.core.messages import Request
from tollway.core.principal import Principal
from tollway.errors import TooManyRequests
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore
from tollway.tools.boto import BotoCaller
from tollway.transport.exchange import AiohttpExchanger

from tests.bench.infra import FAKE_AWS
from tests.bench.procs import Procs
from tests.bench.servers import moto_server
from tests.conftest import INFRA
from tests.exchangers import HttpxExchanger
from tests.lean import dynamo_caller

ROUNDS = 5
PLANS = {
    "big": Plan.model_validate(
        {"rate": {"limit": 100_000, "per": "minute"}, "quota": {"limit": 10**9, "per": "month"}}
    ),
    "tiny": Plan.model_validate(
        {"rate": {"limit": 1, "per": "minute"}, "quota": {"limit": 10**9, "per": "month"}}
    ),
}


class CountingExchanger:
    """The container's exchanger, counting the DynamoDB operations sent through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def request(
        self, method: str, url: str, headers: list[tuple[str, str]], body: Any, **options: Any
    ) -> Any:
        self.calls.append(dict(headers).get("x-amz-target", "").rpartition(".")[2])
        return await self.inner.request(method, url, headers, body, **options)


def exchange(route: Any, plan: str, consumer: str) -> Context:
    request = Request("GET", "/", b"", {}, b"", "127.0.0.1", "http", "bench")
    principal = Principal(consumer, plan, frozenset(), "api_key")
    return Context(request, route, {}, time.monotonic(), principal=principal)


async def run(
    admission: QuotaAdmission, route: Any, plan: str, consumer: str, n: int
) -> tuple[float, list[float]]:
    """(CPU seconds, wall seconds of each admission) for n admissions."""
    samples = []
    cpu = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        with contextlib.suppress(TooManyRequests):
            await admission.spend(exchange(route, plan, consumer)).run()
        samples.append(time.perf_counter() - started)
    return time.process_time() - cpu, samples


async def main(n: int) -> None:
    with Procs() as procs:
        url = moto_server(procs)
        boto = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
            config=aws.hot_path_config(),
        )
        boto.create_table(
            TableName="QuotaTable",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        route = replace(next(r for r in compile_infra(INFRA, "dev").routes if r.id == "profile.get"), cost=1)
        http = AiohttpExchanger()
        through_httpx = HttpxExchanger()
        lean = dynamo_caller(http, boto)
        transport = lean.exchanger = CountingExchanger(lean.exchanger)
        callers: dict[str, Caller] = {
            "boto3": BotoCaller(boto),
            "lean": lean,
            "lean-httpx": dynamo_caller(through_httpx, boto),
        }
        admissions = {name: QuotaAdmission(QuotaStore(c, "QuotaTable"), PLANS) for name, c in callers.items()}
        routes = dict.fromkeys(admissions, route)
        consumers = {name: uuid.uuid4().hex for name in admissions}
        for name, admission in admissions.items():  # warm-up: connections, caches
            await run(admission, routes[name], "big", consumers[name], 100)
        cpu: dict[str, list[float]] = {name: [] for name in admissions}
        wall: dict[str, list[float]] = {name: [] for name in admissions}
        per_round = max(1, n // ROUNDS)
        for _ in range(ROUNDS):
            for name, admission in admissions.items():
                spent, samples = await run(admission, routes[name], "big", consumers[name], per_round)
                cpu[name].append(spent / per_round)
                wall[name].extend(samples)
        print(f"{per_round * ROUNDS} admissions per path, {ROUNDS} rounds, moto behind uvicorn")
        print(f"{'path':<10} {'CPU µs/admission':>17} {'wall median µs':>15} {'wall p99 µs':>12}")
        for name in admissions:
            ordered = sorted(wall[name])
            print(
                f"{name:<10} {statistics.median(cpu[name]) * 1e6:>17.0f} "
                f"{statistics.median(ordered) * 1e6:>15.0f} {ordered[int(len(ordered) * 0.99)] * 1e6:>12.0f}"
            )

        transport.calls.clear()
        lean = admissions["lean"]
        await run(lean, route, "big", consumers["lean"], 100)
        print(f"lean: {len(transport.calls) / 100:.2f} HTTP requests per admitted request")
        limited = uuid.uuid4().hex
        await lean.spend(exchange(route, "tiny", limited)).run()
        other_caller = dynamo_caller(http, boto)
        other_caller.exchanger = transport
        other = QuotaAdmission(QuotaStore(other_caller, "QuotaTable"), PLANS)
        transport.calls.clear()
        await run(other, route, "tiny", limited, 1)
        print(f"lean: first rejection in another container: {transport.calls}")
        transport.calls.clear()
        spent, samples = await run(other, route, "tiny", limited, 500)
        print(
            f"lean: remembered rejections: {len(transport.calls) / 500:.2f} requests, "
            f"{spent / 500 * 1e6:.0f} µs CPU, median {statistics.median(samples) * 1e6:.0f} µs each"
        )

        signer = callers["lean"].signer  # type: ignore[attr-defined]
        frozen = callers["lean"].credentials.get_frozen_credentials()  # type: ignore[attr-defined]
        body = b'{"TableName":"QuotaTable","Key":{"pk":{"S":"x"}}}' * 8
        started = time.process_time()
        for _ in range(10_000):
            signer.headers(body, "DynamoDB_20120810.UpdateItem", frozen, time.time())
        print(f"SigV4 of a 400-byte body: {(time.process_time() - started) / 10_000 * 1e6:.1f} µs CPU")
        await http.close()
        await through_httpx.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
