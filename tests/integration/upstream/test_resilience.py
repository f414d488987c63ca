"""Retries (idempotent methods only, within the deadline) and the circuit breaker."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.upstream.conftest import FakeClock, Reply, Scripted, gateway, write_infra

pytestmark = pytest.mark.anyio


def route(methods, **backend):
    return {
        "id": "r",
        "path": "/v1/r",
        "methods": methods,
        "compose": "group",
        "backends": [{"name": "svc", "service": "svc", "path": "/x", **backend}],
    }


@pytest.mark.parametrize(("method", "calls", "status"), [("GET", 2, 200), ("PUT", 2, 200), ("POST", 1, 502)])
async def test_retry_only_idempotent_methods(serve, tmp_path, method, calls, status):
    svc = Scripted({"/x": [Reply(503, {}), Reply(json={"ok": 1})]})
    retry = {"attempts": 3, "backoff_ms": 5}
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route([method], retry=retry)])
    async with gateway(infra) as (gw, _):
        response = await gw.request(method, "/v1/r")
    assert response.status_code == status
    assert svc.calls("/x") == calls


async def test_no_retry_on_a_4xx(serve, tmp_path):
    svc = Scripted({"/x": Reply(400, {})})
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route(["GET"], retry={"attempts": 3})])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/r")
    assert response.status_code == 502 and svc.calls("/x") == 1


async def test_retries_stop_at_the_deadline(serve, tmp_path):
    svc = Scripted({"/x": Reply(503, {})})
    r = route(["GET"], retry={"attempts": 5, "backoff_ms": 200})
    r["timeout_ms"] = 150
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [r])
    # A backoff of at least 200 ms never fits in a 150 ms deadline.
    async with gateway(infra) as (gw, upstream):
        upstream.caller.rng = lambda: 1.0
        started = time.monotonic()
        response = await gw.get("/v1/r")
    assert response.status_code == 502 and svc.calls("/x") == 1
    assert time.monotonic() - started < 0.15


async def test_breaker_opens_then_half_opens_one_trial(serve, tmp_path):
    svc = Scripted({"/x": Reply(500, {})})
    breaker = {"failures": 2, "cooldown_s": 5}
    infra = write_infra(
        tmp_path, {"svc": serve(svc)}, [route(["GET"], retry={"attempts": 1}, breaker=breaker)]
    )
    clock = FakeClock()
    async with gateway(infra, clock=clock) as (gw, _):
        assert [(await gw.get("/v1/r")).status_code for _ in range(2)] == [502, 502]
        assert svc.calls("/x") == 2
        # Open: fails fast, the backend sees nothing.
        response = await gw.get("/v1/r")
        assert response.status_code == 502 and "circuit open" in response.json()["detail"]
        assert svc.calls("/x") == 2

        # Half-open: one trial; it fails, so the breaker opens again.
        clock.now += 5
        assert (await gw.get("/v1/r")).status_code == 502
        assert (await gw.get("/v1/r")).status_code == 502
        assert svc.calls("/x") == 3

        # Half-open again, the backend is back: only one of two concurrent calls is the trial.
        clock.now += 5
        svc.replies["/x"] = Reply(json={"ok": 1}, delay_s=0.1)
        first, second = await asyncio.gather(gw.get("/v1/r"), gw.get("/v1/r"))
        assert sorted([first.status_code, second.status_code]) == [200, 502]
        assert svc.calls("/x") == 4
        # The trial succeeded: closed.
        assert (await gw.get("/v1/r")).status_code == 200
        assert svc.calls("/x") == 5


async def test_open_breaker_on_an_optional_backend_is_partial(serve, tmp_path):
    svc = Scripted({"/x": Reply(500, {})})
    other = Scripted({"/ok": Reply(json={"ok": 1})})
    r = route(["GET"], retry={"attempts": 1}, breaker={"failures": 1, "cooldown_s": 60}, required=False)
    r["backends"].append({"name": "ok", "service": "other", "path": "/ok"})
    infra = write_infra(tmp_path, {"svc": serve(svc), "other": serve(other)}, [r])
    async with gateway(infra, clock=FakeClock()) as (gw, _):
        await gw.get("/v1/r")
        response = await gw.get("/v1/r")
    assert response.status_code == 200
    assert response.json() == {"svc": None, "ok": {"ok": 1}}
    assert response.headers["tollway-partial"] == "svc"
    assert svc.calls("/x") == 1


async def test_proxy_retries_get_and_hides_5xx_bodies(serve, tmp_path):
    failing = [Reply(502, {}), Reply(500, {"trace": "SECRET"})]
    svc = Scripted({"/x": failing, "/missing": Reply(404, {"e": 1})})
    routes = [
        {"id": "p", "path": "/v1/p", "backends": [{"name": "p", "service": "svc", "path": "/x"}]},
        {"id": "m", "path": "/v1/m", "backends": [{"name": "m", "service": "svc", "path": "/missing"}]},
    ]
    infra = write_infra(tmp_path, {"svc": serve(svc)}, routes)
    async with gateway(infra) as (gw, _):
        failed = await gw.get("/v1/p")
        missing = await gw.get("/v1/m")
    assert failed.status_code == 502 and "SECRET" not in failed.text
    assert svc.calls("/x") == 2
    # A 4xx is the backend's answer to this request: passed through as it is.
    assert missing.status_code == 404 and missing.json() == {"e": 1}
