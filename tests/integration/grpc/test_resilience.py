"""Retries (idempotent gRPC backends only), round-robin over several grpc:// instances and
circuit breakers, as HTTP backends have them."""

from __future__ import annotations

import itertools
from pathlib import Path

import grpc
import pytest

from tests.grpc_backends import RawServer, ThingsServer, echo_get
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import FakeClock, gateway

GET = "tollway.test.v1.Things/Get"


def route(idempotent: bool, **backend: object) -> dict:
    return {
        "id": "get",
        "path": "/v1/things/{id}",
        "backends": [
            {
                "name": "t",
                "service": "t",
                "grpc": GET,
                "body": {"id": "{id}"},
                "idempotent": idempotent,
                "retry": {"attempts": 3, "backoff_ms": 1},
                **backend,
            }
        ],
    }


def flaky(failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE):
    count = itertools.count()

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        if next(count) < failures:
            context.abort(code, "try again")
        return echo_get(request, context)

    return handler


@pytest.mark.parametrize("idempotent, calls, status", [(True, 3, 200), (False, 1, 502)])
async def test_retry_applies_only_to_an_idempotent_backend(
    tmp_path: Path, idempotent: bool, calls: int, status: int
) -> None:
    things = ThingsServer({"Get": flaky(2)}).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [route(idempotent)])) as (gw, _):
            response = await gw.get("/v1/things/a")
    finally:
        things.stop()
    assert response.status_code == status
    assert things.count("Get") == calls


async def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    things = ThingsServer({"Get": flaky(5, grpc.StatusCode.NOT_FOUND)}).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [route(True)])) as (gw, _):
            response = await gw.get("/v1/things/a")
    finally:
        things.stop()
    assert response.status_code == 404
    assert things.count("Get") == 1


async def test_calls_are_spread_round_robin_over_the_instances(tmp_path: Path) -> None:
    one, two = ThingsServer().start(), ThingsServer().start()
    try:
        infra = grpc_infra(tmp_path, {"t": [one.url, two.url]}, [route(False)])
        async with gateway(infra, rng=lambda: 0.0) as (gw, _):
            for _ in range(6):
                assert (await gw.get("/v1/things/a")).status_code == 200
    finally:
        one.stop()
        two.stop()
    assert (one.count("Get"), two.count("Get")) == (3, 3)


async def test_an_idempotent_call_fails_over_to_a_live_instance(tmp_path: Path) -> None:
    dead = RawServer().start()
    dead.stop()  # nothing listens there
    live = ThingsServer().start()
    try:
        infra = grpc_infra(tmp_path, {"t": [dead.url, live.url]}, [route(True)])
        async with gateway(infra, rng=lambda: 0.0) as (gw, _):
            statuses = [(await gw.get("/v1/things/a")).status_code for _ in range(4)]
    finally:
        live.stop()
    assert statuses == [200] * 4
    assert live.count("Get") == 4


async def test_an_open_breaker_keeps_calls_off_a_failing_instance(tmp_path: Path) -> None:
    clock = FakeClock()
    things = ThingsServer({"Get": flaky(100, grpc.StatusCode.INTERNAL)}).start()
    try:
        backend = {"breaker": {"failures": 2, "cooldown_s": 30}}
        infra = grpc_infra(tmp_path, {"t": things.url}, [route(False, **backend)])
        async with gateway(infra, clock=clock) as (gw, _):
            statuses = [(await gw.get("/v1/things/a")).status_code for _ in range(5)]
            assert things.count("Get") == 2  # then the breaker opened: no more calls
            clock.now += 31  # half-open: one trial goes through
            statuses.append((await gw.get("/v1/things/a")).status_code)
    finally:
        things.stop()
    assert statuses == [502] * 6
    assert things.count("Get") == 3
