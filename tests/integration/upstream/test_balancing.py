"""Services with several real loopback instances: spread, failover, no failover for POST, recovery.

The rotation starts at the first listed instance (`rng=lambda: 0.0`, which also makes retry
backoffs zero); breakers use a fake clock, so a cool-down passes only when a test says so.
"""

from __future__ import annotations

from collections import Counter

import pytest
from tollway.config.models import Breaker as BreakerConfig
from tollway.dev.serve import free_port

from tests.integration.upstream.conftest import FakeClock, Reply, Scripted, gateway, write_infra

pytestmark = pytest.mark.anyio


def first() -> float:
    return 0.0


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def instance(i: int, **reply) -> Scripted:
    return Scripted({"/x": Reply(json={"i": i}, **reply)})


def route(methods=("GET",), **backend):
    return {
        "id": "r",
        "path": "/v1/r",
        "methods": list(methods),
        "backends": [{"name": "svc", "service": "svc", "path": "/x", **backend}],
    }


async def test_requests_are_spread_round_robin(serve, tmp_path):
    instances = [instance(i) for i in range(3)]
    infra = write_infra(tmp_path, {"svc": [serve(s) for s in instances]}, [route()])
    async with gateway(infra, rng=first) as (gw, _):
        answers = [(await gw.get("/v1/r")).json()["i"] for _ in range(9)]
    assert answers == [0, 1, 2] * 3


async def test_dead_slow_and_flapping_instances_are_invisible_to_get_callers(serve, tmp_path):
    healthy = [instance(0), instance(4)]
    slow = instance(2, delay_s=5)
    flapping = Scripted({"/x": [Reply(500, {}), Reply(json={"i": 3})] * 50})
    urls = [serve(healthy[0]), dead_url(), serve(slow), serve(flapping), serve(healthy[1])]
    # A refused connection fails over for free; a timeout or a 5xx spends a retry. The worst
    # turn is dead (free) -> slow (timeout) -> flapping (500) -> healthy: three tries.
    backend = {
        "timeout_ms": 150,
        "retry": {"attempts": 3, "backoff_ms": 0},
        "breaker": {"failures": 2, "cooldown_s": 30},
    }
    infra = write_infra(tmp_path, {"svc": urls}, [route(**backend)])
    async with gateway(infra, clock=FakeClock(), rng=first) as (gw, upstream):
        responses = [await gw.get("/v1/r") for _ in range(60)]
        breakers = {url: upstream.breakers.get(url, BreakerConfig()).state for url in urls}

    assert [r.status_code for r in responses] == [200] * 60
    # The dead and the slow one opened their breakers after two failures each; the flapping
    # one never fails twice in a row, so it stays in the rotation.
    assert breakers == {
        urls[0]: "closed",
        urls[1]: "open",
        urls[2]: "open",
        urls[3]: "closed",
        urls[4]: "closed",
    }
    assert slow.calls("/x") == 2
    served = Counter(r.json()["i"] for r in responses)
    assert set(served) == {0, 3, 4}
    # Roughly even: the three live instances get a third of the calls each, give or take;
    # half of the flapping one's fail and their retries go to the next healthy one.
    calls = [healthy[0].calls("/x"), flapping.calls("/x"), healthy[1].calls("/x")]
    assert all(18 <= n <= 26 for n in calls), calls
    assert abs(served[0] - served[4]) <= 2 and served[3] == flapping.calls("/x") // 2, served


async def test_a_post_is_never_sent_twice(serve, tmp_path):
    alive = instance(1)
    infra = write_infra(tmp_path, {"svc": [dead_url(), serve(alive)]}, [route(["GET", "POST"])])
    async with gateway(infra, rng=first) as (gw, _):
        refused = await gw.post("/v1/r", json={"order": 1})
        after = await gw.post("/v1/r", json={"order": 2})
    assert refused.status_code == 502
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "backend svc failed: could not connect"
    assert alive.seen[0].body == b'{"order":2}' and alive.calls("/x") == 1
    # The rotation moved on: the next call went to the live instance.
    assert after.status_code == 200


async def test_a_post_answered_with_a_5xx_is_not_retried_elsewhere(serve, tmp_path):
    failing, other = instance(0, status=503), instance(1)
    infra = write_infra(tmp_path, {"svc": [serve(failing), serve(other)]}, [route(["POST"])])
    async with gateway(infra, rng=first) as (gw, _):
        response = await gw.post("/v1/r", json={})
    assert response.status_code == 502
    assert failing.calls("/x") == 1 and other.calls("/x") == 0


async def test_a_get_fails_over_without_spending_its_retries(serve, tmp_path):
    alive = instance(1)
    urls = [dead_url(), dead_url(), serve(alive)]
    infra = write_infra(tmp_path, {"svc": urls}, [route(retry={"attempts": 1})])
    async with gateway(infra, rng=first) as (gw, _):
        response = await gw.get("/v1/r")
    assert response.status_code == 200 and response.json() == {"i": 1}


async def test_every_instance_down_is_a_502(tmp_path):
    infra = write_infra(tmp_path, {"svc": [dead_url(), dead_url()]}, [route()])
    async with gateway(infra, rng=first) as (gw, _):
        response = await gw.get("/v1/r")
    assert response.status_code == 502
    assert response.json()["detail"] == "backend svc failed: could not connect"


async def test_an_instance_comes_back_after_its_cooldown(serve, tmp_path):
    port = free_port()
    alive = instance(1)
    urls = [f"http://127.0.0.1:{port}", serve(alive)]
    infra = write_infra(tmp_path, {"svc": urls}, [route(breaker={"failures": 1, "cooldown_s": 10})])
    clock = FakeClock()
    async with gateway(infra, clock=clock, rng=first) as (gw, _):
        assert (await gw.get("/v1/r")).json() == {"i": 1}  # refused, failed over
        back = instance(0)
        serve(back, port=port)
        # Open: skipped until the cool-down has passed, although it answers again.
        assert [(await gw.get("/v1/r")).json()["i"] for _ in range(4)] == [1, 1, 1, 1]
        assert back.calls("/x") == 0
        clock.now += 10
        # Half-open: the next turn is its trial; it succeeds and the instance is back in rotation.
        assert [(await gw.get("/v1/r")).json()["i"] for _ in range(4)] == [0, 1, 0, 1]
    assert back.calls("/x") == 2


async def test_a_slow_instance_costs_only_its_timeout_then_is_skipped(serve, tmp_path):
    slow, fast = instance(0, delay_s=5), instance(1)
    backend = {"timeout_ms": 100, "retry": {"attempts": 2, "backoff_ms": 0}, "breaker": {"failures": 1}}
    infra = write_infra(tmp_path, {"svc": [serve(slow), serve(fast)]}, [route(**backend)])
    async with gateway(infra, clock=FakeClock(), rng=first) as (gw, _):
        responses = [await gw.get("/v1/r") for _ in range(6)]
    assert [r.json()["i"] for r in responses] == [1] * 6
    assert slow.calls("/x") == 1
