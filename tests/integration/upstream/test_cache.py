"""Route and backend response caches: hits, per-consumer keys, and every bypass."""

from __future__ import annotations

import pytest

from tests.integration.upstream.conftest import FakeClock, Reply, Scripted, gateway, write_infra

pytestmark = pytest.mark.anyio


def cached_route(cache, **backend):
    return {
        "id": "c",
        "path": "/v1/c/{id}",
        "compose": "group",
        "cache": cache,
        "backends": [{"name": "svc", "service": "svc", "path": "/x/{id}", **backend}],
    }


async def test_route_cache_hit_per_consumer_and_ttl(serve, tmp_path):
    svc = Scripted({"/x/1": Reply(json={"v": 1}), "/x/2": Reply(json={"v": 2})})
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [cached_route({"ttl_s": 30})])
    clock = FakeClock()
    async with gateway(infra, clock=clock) as (gw, _):
        first = await gw.get("/v1/c/1")
        second = await gw.get("/v1/c/1")
        other_param = await gw.get("/v1/c/2")
        other_consumer = await gw.get("/v1/c/1", headers={"x-consumer": "c2"})
        clock.now += 31
        expired = await gw.get("/v1/c/1")
    assert first.headers["tollway-cache"] == "miss"
    assert second.headers["tollway-cache"] == "hit" and second.json() == {"svc": {"v": 1}}
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert other_param.headers["tollway-cache"] == "miss" and other_param.json() == {"svc": {"v": 2}}
    assert other_consumer.headers["tollway-cache"] == "miss"
    assert expired.headers["tollway-cache"] == "miss"
    assert svc.calls("/x/1") == 3


async def test_shared_route_cache_serves_every_consumer(serve, tmp_path):
    svc = Scripted({"/x/1": Reply(json={"v": 1})})
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [cached_route({"ttl_s": 30, "shared": True})])
    async with gateway(infra) as (gw, _):
        await gw.get("/v1/c/1")
        response = await gw.get("/v1/c/1", headers={"x-consumer": "c2"})
    assert response.headers["tollway-cache"] == "hit" and svc.calls("/x/1") == 1


@pytest.mark.parametrize(
    ("cache_control", "shared"),
    [("no-store", False), ("private, max-age=60", True), ("max-age=0", False)],
)
async def test_backend_cache_control_bypasses(serve, tmp_path, cache_control, shared):
    svc = Scripted({"/x/1": Reply(json={"v": 1}, headers=(("cache-control", cache_control),))})
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [cached_route({"ttl_s": 30, "shared": shared})])
    async with gateway(infra) as (gw, _):
        await gw.get("/v1/c/1")
        response = await gw.get("/v1/c/1")
    assert response.headers["tollway-cache"] == "miss" and svc.calls("/x/1") == 2


async def test_backend_max_age_shortens_the_ttl(serve, tmp_path):
    svc = Scripted({"/x/1": Reply(json={"v": 1}, headers=(("cache-control", "max-age=5"),))})
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [cached_route({"ttl_s": 30})])
    clock = FakeClock()
    async with gateway(infra, clock=clock) as (gw, _):
        await gw.get("/v1/c/1")
        clock.now += 4
        assert (await gw.get("/v1/c/1")).headers["tollway-cache"] == "hit"
        clock.now += 2
        assert (await gw.get("/v1/c/1")).headers["tollway-cache"] == "miss"


async def test_partial_and_failed_answers_are_not_cached(serve, tmp_path):
    svc = Scripted({"/x/1": Reply(json={"v": 1}), "/opt": Reply(500, {})})
    route = cached_route({"ttl_s": 30}, retry={"attempts": 1})
    route["backends"].append({"name": "opt", "service": "svc", "path": "/opt", "required": False})
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        first = await gw.get("/v1/c/1")
        second = await gw.get("/v1/c/1")
    assert first.headers["tollway-partial"] == "opt"
    assert second.headers["tollway-cache"] == "miss" and svc.calls("/x/1") == 2


async def test_backend_cache_keeps_one_backend_answer(serve, tmp_path):
    svc = Scripted({"/x/1": Reply(json={"v": 1}), "/live": Reply(json={"now": 1})})
    route = {
        "id": "c",
        "path": "/v1/c/{id}",
        "compose": "merge",
        "backends": [
            {"name": "static", "service": "svc", "path": "/x/{id}", "cache": {"ttl_s": 30}},
            {"name": "live", "service": "svc", "path": "/live"},
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        for _ in range(3):
            response = await gw.get("/v1/c/1")
            assert response.json() == {"v": 1, "now": 1}
        assert "tollway-cache" not in response.headers
        other = await gw.get("/v1/c/1", headers={"x-consumer": "c2"})
    assert other.status_code == 200
    assert svc.calls("/x/1") == 2 and svc.calls("/live") == 4


async def test_proxy_route_cache(serve, tmp_path):
    svc = Scripted({"/x/1": Reply(json={"v": 1})})
    route = {
        "id": "p",
        "path": "/v1/p/{id}",
        "cache": {"ttl_s": 30},
        "backends": [{"name": "p", "service": "svc", "path": "/x/{id}"}],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        await gw.get("/v1/p/1")
        head = await gw.head("/v1/p/1")
        response = await gw.get("/v1/p/1")
    assert head.status_code == 200
    assert response.headers["tollway-cache"] == "hit" and response.json() == {"v": 1}
    assert svc.calls("/x/1") == 2  # the GET, then the HEAD (cached apart: it has no body)
