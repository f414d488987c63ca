"""Group, merge, chains and honest partial failure against real loopback backends."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.integration.upstream.conftest import Recorder, Reply, Scripted, gateway, write_infra

pytestmark = pytest.mark.anyio

USER = {"id": "u?1 x", "name": "Ada", "email": "ada@example.com"}


def profile_route(**overrides):
    route = {
        "id": "profile.get",
        "path": "/v1/profile/{user_id}",
        "compose": "group",
        "backends": [
            {
                "name": "user",
                "service": "users",
                "path": "/users/{user_id}",
                "pick": ["id", "name"],
                "rename": {"name": "full_name"},
            },
            {
                "name": "orders",
                "service": "orders",
                "path": "/orders",
                "query": {"user": "{user_id}"},
                "required": False,
            },
            {"name": "reviews", "service": "users", "path": "/reviews/{user.id}", "required": False},
        ],
    }
    route.update(overrides)
    return route


async def test_group_picks_renames_chains_and_encodes(serve, tmp_path):
    users = Scripted({"/users/a b": Reply(json=USER), "/reviews/u?1 x": Reply(json=[{"stars": 5}])})
    orders = Scripted({"/orders": Reply(json={"orders": [1, 2]})})
    infra = write_infra(tmp_path, {"users": serve(users), "orders": serve(orders)}, [profile_route()])
    usage = Recorder()
    async with gateway(infra, usage=usage) as (gw, _):
        response = await gw.get("/v1/profile/a%20b", headers={"x-api-key": "secret"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "tollway-partial" not in response.headers
    assert response.json() == {
        "user": {"id": "u?1 x", "full_name": "Ada"},
        "orders": {"orders": [1, 2]},
        "reviews": [{"stars": 5}],
    }
    assert orders.seen[0].query == "user=a%20b"
    # The chained value is URL-encoded: its slash cannot add a path segment.
    assert [s.raw_path for s in users.seen if s.path.startswith("/reviews")] == ["/reviews/u%3F1%20x"]
    assert all("x-api-key" not in s.headers for s in users.seen + orders.seen)
    assert sorted(usage.backends()) == [("orders", 200), ("reviews", 200), ("user", 200)]


async def test_independent_backends_run_in_parallel(serve, tmp_path):
    slow = Scripted({f"/{n}": Reply(json={n: 1}, delay_s=0.3) for n in "abcde"})
    url = serve(slow)
    route = {
        "id": "five",
        "path": "/v1/five",
        "compose": "merge",
        "backends": [{"name": n, "service": "slow", "path": f"/{n}"} for n in "abcde"],
    }
    infra = write_infra(tmp_path, {"slow": url}, [route])
    async with gateway(infra) as (gw, _):
        started = time.monotonic()
        response = await gw.get("/v1/five")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {n: 1 for n in "abcde"}
    assert elapsed < 1.0, f"five 300 ms backends took {elapsed:.2f}s: they did not run together"


async def test_merge_is_deep_and_later_backends_win(serve, tmp_path):
    svc = Scripted(
        {
            "/a": Reply(json={"user": {"id": 1, "name": "Ada"}, "tier": "free", "tags": [1]}),
            "/b": Reply(json={"user": {"country": "GB"}, "tier": "pro", "tags": [2]}),
        }
    )
    route = {
        "id": "merged",
        "path": "/v1/merged",
        "compose": "merge",
        "backends": [
            {"name": "a", "service": "svc", "path": "/a"},
            {"name": "b", "service": "svc", "path": "/b"},
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/merged")
    assert response.json() == {"user": {"id": 1, "name": "Ada", "country": "GB"}, "tier": "pro", "tags": [2]}


async def test_optional_failure_is_null_and_partial(serve, tmp_path):
    users = Scripted({"/users/1": Reply(json=USER), "/reviews/u?1 x": Reply(500, {"trace": "SECRET"})})
    orders = Scripted({"/orders": Reply(body=b"<html>not json</html>")})
    infra = write_infra(tmp_path, {"users": serve(users), "orders": serve(orders)}, [profile_route()])
    usage = Recorder()
    async with gateway(infra, usage=usage) as (gw, _):
        response = await gw.get("/v1/profile/1")
    assert response.status_code == 200
    assert response.headers["tollway-partial"] == "orders, reviews"
    body = response.json()
    assert body["orders"] is None and body["reviews"] is None
    assert body["user"] == {"id": "u?1 x", "full_name": "Ada"}
    assert b"SECRET" not in response.content
    assert dict(usage.backends()) == {"user": 200, "orders": 200, "reviews": 500}


async def test_required_failure_is_502_without_the_backend_body(serve, tmp_path):
    users = Scripted({"/users/1": Reply(500, {"trace": "SECRET stack"})})
    orders = Scripted({"/orders": Reply(json={})})
    infra = write_infra(tmp_path, {"users": serve(users), "orders": serve(orders)}, [profile_route()])
    usage = Recorder()
    async with gateway(infra, usage=usage) as (gw, _):
        response = await gw.get("/v1/profile/1")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "user" in problem["detail"] and "SECRET" not in response.text
    outcomes = dict(usage.backends())
    assert outcomes["user"] == 500 and outcomes["reviews"] is None  # skipped: it needs user


async def test_required_4xx_is_502(serve, tmp_path):
    users = Scripted({})  # 404 for everything
    infra = write_infra(tmp_path, {"users": serve(users), "orders": serve(users)}, [profile_route()])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/profile/1")
    assert response.status_code == 502
    assert "404" in response.json()["detail"]


@pytest.mark.parametrize("required", [True, False])
async def test_non_scalar_chained_value_fails_the_dependant(serve, tmp_path, required):
    users = Scripted({"/users/1": Reply(json={"id": {"nested": 1}, "name": "Ada"})})
    route = profile_route()
    route["backends"][2]["required"] = required
    infra = write_infra(tmp_path, {"users": serve(users), "orders": serve(users)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/profile/1")
    if required:
        assert response.status_code == 502
        assert "reviews" in response.json()["detail"]
    else:
        assert response.status_code == 200
        assert "reviews" in response.headers["tollway-partial"]
    assert not any(s.path.startswith("/reviews") for s in users.seen)


async def test_dependant_of_a_failed_optional_backend_is_skipped(serve, tmp_path):
    svc = Scripted({"/a": Reply(503, {}), "/b/1": Reply(json={"b": 1})})
    route = {
        "id": "chain",
        "path": "/v1/chain",
        "compose": "group",
        "backends": [
            {"name": "a", "service": "svc", "path": "/a", "required": False, "retry": {"attempts": 1}},
            {"name": "b", "service": "svc", "path": "/b/{a.id}", "required": False},
            {"name": "c", "service": "svc", "path": "/b/{a.id}"},
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/chain")
    assert response.status_code == 502
    assert "c" in response.json()["detail"] and "skipped" in response.json()["detail"]
    assert svc.calls("/a") == 1 and not any(s.path.startswith("/b") for s in svc.seen)


async def test_dependant_starts_when_its_dependency_answers(serve, tmp_path):
    svc = Scripted(
        {
            "/first": Reply(json={"id": 7}, delay_s=0.1),
            "/slow": Reply(json={}, delay_s=0.3),
            "/then/7": Reply(json={"ok": True}),
        }
    )
    route = {
        "id": "dag",
        "path": "/v1/dag",
        "compose": "group",
        "backends": [
            {"name": "first", "service": "svc", "path": "/first"},
            {"name": "slow", "service": "svc", "path": "/slow"},
            {"name": "then", "service": "svc", "path": "/then/{first.id}"},
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/dag")
    assert response.status_code == 200
    assert response.json()["then"] == {"ok": True}
    arrived = {s.path: s.at for s in svc.seen}
    # `then` waited for `first` only, not for the slow independent backend.
    assert 0.1 <= arrived["/then/7"] - arrived["/first"] < 0.25


async def test_deadline_gives_504_on_time_and_cancels_the_slow_call(serve, tmp_path):
    svc = Scripted({"/fast": Reply(json={}), "/hang": Reply(json={}, delay_s=5)})
    route = {
        "id": "slow",
        "path": "/v1/slow",
        "compose": "group",
        "timeout_ms": 300,
        "backends": [
            {"name": "fast", "service": "svc", "path": "/fast"},
            {"name": "hang", "service": "svc", "path": "/hang"},
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        started = time.monotonic()
        response = await gw.get("/v1/slow")
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert 0.25 < elapsed < 1.0
    for _ in range(50):
        if svc.cancelled:
            break
        await asyncio.sleep(0.02)
    assert svc.cancelled == ["/hang"]


async def test_optional_backend_still_running_at_the_deadline_is_partial(serve, tmp_path):
    svc = Scripted({"/fast": Reply(json={"ok": 1}), "/hang": Reply(json={}, delay_s=5)})
    route = {
        "id": "slow",
        "path": "/v1/slow",
        "compose": "group",
        "timeout_ms": 300,
        "backends": [
            {"name": "fast", "service": "svc", "path": "/fast"},
            {"name": "hang", "service": "svc", "path": "/hang", "required": False},
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        started = time.monotonic()
        response = await gw.get("/v1/slow")
        elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 1.0
    assert response.json() == {"fast": {"ok": 1}, "hang": None}
    assert response.headers["tollway-partial"] == "hang"


@pytest.mark.parametrize("required", [True, False])
async def test_backend_timeout_inside_the_deadline(serve, tmp_path, required):
    svc = Scripted({"/fast": Reply(json={"ok": 1}), "/slow": Reply(json={}, delay_s=0.3)})
    route = {
        "id": "slow",
        "path": "/v1/slow",
        "compose": "group",
        "timeout_ms": 2000,
        "backends": [
            {"name": "fast", "service": "svc", "path": "/fast"},
            {
                "name": "slow",
                "service": "svc",
                "path": "/slow",
                "timeout_ms": 100,
                "required": required,
                "retry": {"attempts": 1},
            },
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        started = time.monotonic()
        response = await gw.get("/v1/slow")
        elapsed = time.monotonic() - started
    assert elapsed < 0.3
    if required:
        assert response.status_code == 504
        assert "slow" in response.json()["detail"]
    else:
        assert response.status_code == 200 and response.headers["tollway-partial"] == "slow"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"\x00garbage{"),
        Reply(body=orjson.dumps({"x": "y" * 20_000})),
        Reply(body=orjson.dumps({"x": "y" * 200_000}), chunked=True),
        Reply(body=orjson.dumps({"x": "y" * 1000}), cut_after=100),
        Reply(body=b"[" * 300 + b"]" * 300),
    ],
    ids=["garbage", "huge", "huge-chunked", "cut", "too-deep"],
)
async def test_unusable_answers(serve, tmp_path, reply):
    svc = Scripted({"/bad": reply, "/good": Reply(json={"ok": 1})})
    backends = [
        {"name": "good", "service": "svc", "path": "/good"},
        {"name": "bad", "service": "svc", "path": "/bad"},
    ]
    routes = [
        {"id": "required", "path": "/v1/required", "compose": "group", "backends": backends},
        {
            "id": "optional",
            "path": "/v1/optional",
            "compose": "group",
            "backends": [backends[0], {**backends[1], "required": False}],
        },
    ]
    infra = write_infra(tmp_path, {"svc": serve(svc)}, routes, max_response_bytes=10_000)
    async with gateway(infra) as (gw, _):
        required = await gw.get("/v1/required")
        optional = await gw.get("/v1/optional")
    assert required.status_code == 502
    assert "yyyy" not in required.text and "garbage" not in required.text
    assert optional.status_code == 200
    assert optional.json() == {"good": {"ok": 1}, "bad": None}
    assert optional.headers["tollway-partial"] == "bad"


async def test_unreachable_backend(serve, tmp_path):
    from tollway.dev.serve import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    route = {
        "id": "dead",
        "path": "/v1/dead",
        "compose": "group",
        "backends": [{"name": "gone", "service": "gone", "path": "/x"}],
    }
    infra = write_infra(tmp_path, {"gone": dead}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/dead")
    assert response.status_code == 502
    assert response.json()["detail"].startswith("backend gone failed")
