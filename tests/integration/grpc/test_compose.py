"""gRPC backends under `group` and `merge`, beside HTTP backends: chains, optional and
required failures, pick and rename, caching, the usage outcome of each backend."""

from __future__ import annotations

from pathlib import Path

import grpc

from tests.grpc_backends import ThingsServer, as_json, thing
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import Recorder, Reply, Scripted, gateway

GET = "tollway.test.v1.Things/Get"
LIST = "tollway.test.v1.Things/List"


def not_found(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


async def test_chains_run_across_http_and_grpc_backends(tmp_path: Path, things: ThingsServer, serve) -> None:
    # HTTP user -> gRPC thing (from the user's field) -> HTTP owner (from the thing's
    # canonical JSON: its camelCase name, its int64 as a string).
    http = Scripted(
        {
            "/users/7": Reply(json={"id": "7", "thing": "t-42"}),
            "/owners/t-42/9": Reply(json={"owner": "ada"}),
        }
    )
    route = {
        "id": "chain",
        "path": "/v1/chain/{user}",
        "compose": "group",
        "backends": [
            {"name": "user", "service": "h", "path": "/users/{user}"},
            {"name": "thing", "service": "t", "grpc": GET, "body": {"id": "{user.thing}", "version": 9}},
            {"name": "owner", "service": "h", "path": "/owners/{thing.id}/{thing.big}"},
        ],
    }
    infra = grpc_infra(tmp_path, {"t": things.url, "h": serve(http)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/chain/7")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user": {"id": "7", "thing": "t-42"},
        "thing": {"id": "t-42", "displayName": "thing t-42", "big": "9"},
        "owner": {"owner": "ada"},
    }
    assert as_json("GetRequest", things.calls[0].request) == {"id": "t-42", "version": "9"}


async def test_merge_pick_and_rename_read_the_canonical_json(
    tmp_path: Path, things: ThingsServer, serve
) -> None:
    http = Scripted({"/extra": Reply(json={"extra": True, "displayName": "http wins"})})
    route = {
        "id": "merged",
        "path": "/v1/merged/{id}",
        "compose": "merge",
        "backends": [
            {
                "name": "thing",
                "service": "t",
                "grpc": GET,
                "body": {"id": "{id}"},
                "pick": ["id", "displayName"],
                "rename": {"id": "thingId"},
            },
            {"name": "more", "service": "h", "path": "/extra"},
        ],
    }
    async with gateway(grpc_infra(tmp_path, {"t": things.url, "h": serve(http)}, [route])) as (gw, _):
        response = await gw.get("/v1/merged/a")
    assert response.json() == {"thingId": "a", "displayName": "http wins", "extra": True}


async def test_an_optional_grpc_backend_that_fails_is_null_and_partial(
    tmp_path: Path, serve
) -> None:
    things = ThingsServer({"Get": not_found}).start()
    http = Scripted({"/users/1": Reply(json={"id": "1"})})
    route = {
        "id": "group",
        "path": "/v1/group/{id}",
        "compose": "group",
        "backends": [
            {"name": "user", "service": "h", "path": "/users/{id}"},
            {"name": "thing", "service": "t", "grpc": GET, "body": {"id": "{id}"}, "required": False},
        ],
    }
    usage = Recorder()
    try:
        infra = grpc_infra(tmp_path, {"t": things.url, "h": serve(http)}, [route])
        async with gateway(infra, usage=usage) as (gw, _):
            response = await gw.get("/v1/group/1")
    finally:
        things.stop()
    assert response.status_code == 200
    assert response.json() == {"user": {"id": "1"}, "thing": None}
    assert response.headers["tollway-partial"] == "thing"
    outcomes = {b.name: (b.status, b.grpc_status) for b in usage.exchanges[-1].backends}
    assert outcomes == {"user": (200, None), "thing": (404, "NOT_FOUND")}


async def test_a_required_grpc_backend_that_fails_is_a_502_without_its_message(tmp_path: Path, serve) -> None:
    things = ThingsServer({"Get": not_found}).start()
    route = {
        "id": "group",
        "path": "/v1/group/{id}",
        "compose": "group",
        "backends": [
            {"name": "user", "service": "h", "path": "/users/{id}"},
            {"name": "thing", "service": "t", "grpc": GET, "body": {"id": "{id}"}},
        ],
    }
    http = Scripted({"/users/1": Reply(json={"id": "1"})})
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url, "h": serve(http)}, [route])) as (gw, _):
            response = await gw.get("/v1/group/1")
    finally:
        things.stop()
    assert response.status_code == 502
    assert response.json()["detail"] == "backend thing failed: it answered gRPC status NOT_FOUND"
    assert "no such thing" not in response.text


async def test_a_chained_value_that_does_not_fit_fails_that_backend_not_the_caller(
    tmp_path: Path, things: ThingsServer, serve
) -> None:
    http = Scripted({"/users/1": Reply(json={"version": "not a number"})})
    route = {
        "id": "group",
        "path": "/v1/group/{id}",
        "compose": "group",
        "backends": [
            {"name": "user", "service": "h", "path": "/users/{id}"},
            {
                "name": "thing",
                "service": "t",
                "grpc": GET,
                "body": {"version": "{user.version}"},
                "required": False,
            },
        ],
    }
    async with gateway(grpc_infra(tmp_path, {"t": things.url, "h": serve(http)}, [route])) as (gw, _):
        response = await gw.get("/v1/group/1")
    assert response.status_code == 200
    assert response.json()["thing"] is None and response.headers["tollway-partial"] == "thing"
    assert things.calls == []


async def test_a_streaming_backend_composes_as_its_array(tmp_path: Path, things: ThingsServer) -> None:
    route = {
        "id": "group",
        "path": "/v1/lists",
        "compose": "group",
        "backends": [
            {"name": "two", "service": "t", "grpc": LIST, "body": {"count": 2}},
            {"name": "none", "service": "t", "grpc": LIST, "body": {"count": 0}},
        ],
    }
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, [route])) as (gw, _):
        response = await gw.get("/v1/lists", headers={"accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.json() == {"two": [{"id": "t0"}, {"id": "t1", "small": 1}], "none": []}


async def test_a_cached_get_route_calls_the_service_once(tmp_path: Path, things: ThingsServer) -> None:
    routes = [
        {
            "id": "cached",
            "path": "/v1/cached/{id}",
            "cache": {"ttl_s": 60},
            "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"}}],
        },
        {
            "id": "group",
            "path": "/v1/group/{id}",
            "compose": "group",
            "backends": [
                {"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"}, "cache": {"ttl_s": 60}},
            ],
        },
    ]
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes)) as (gw, _):
        first = await gw.get("/v1/cached/a")
        second = await gw.get("/v1/cached/a")
        assert (first.json(), second.json()) == ({"id": "a", "displayName": "thing a"},) * 2
        assert (first.headers["tollway-cache"], second.headers["tollway-cache"]) == ("miss", "hit")
        assert things.count("Get") == 1
        for _ in range(3):
            assert (await gw.get("/v1/group/b")).json() == {"t": {"id": "b", "displayName": "thing b"}}
        other = await gw.get("/v1/group/c")
        assert other.json()["t"]["id"] == "c"
    assert things.count("Get") == 3  # /v1/cached/a once, the backend cache once per id


async def test_a_grpc_reply_of_a_thing_bigger_than_json_allows_nested(tmp_path: Path) -> None:
    # A reply as deep as protobuf decodes (100 levels) still writes as JSON.
    value: dict = {"id": "leaf"}
    for _ in range(90):
        value = {"child": value}
    deep = thing(**value)
    things = ThingsServer({"Get": lambda request, context: deep}).start()
    route = {
        "id": "group",
        "path": "/v1/group/{id}",
        "compose": "group",
        "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"}}],
    }
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [route])) as (gw, _):
            response = await gw.get("/v1/group/1")
    finally:
        things.stop()
    assert response.status_code == 200


async def test_a_cacheable_call_carries_only_what_the_cache_key_covers(
    tmp_path: Path, things: ThingsServer
) -> None:
    """Issue 18 item 2 for gRPC: what a service may read from a call whose answer a shared
    cache stores is what the entry's key covers, as for an HTTP backend (upstream/cache.py
    Fill): no cookie, no other caller field, no caller address; and a backend cache keys
    what the call sends."""
    routes = [
        {
            "id": "cached",
            "path": "/v1/cached/{id}",
            "cache": {"ttl_s": 60, "shared": True},
            "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"}}],
        },
        {
            "id": "group",
            "path": "/v1/group/{id}",
            "compose": "group",
            "backends": [
                {"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"},
                 "cache": {"ttl_s": 60, "shared": True, "vary": ["accept-language"]}},
            ],
        },
        {
            "id": "uncached",
            "path": "/v1/uncached/{id}",
            "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"}}],
        },
    ]  # fmt: skip
    secret = {"cookie": "session=SECRET", "x-poison": "1", "accept-language": "fr"}
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes)) as (gw, _):
        for path in ("/v1/cached/a", "/v1/group/a", "/v1/uncached/a"):
            assert (await gw.get(path, headers=secret)).status_code == 200
        # The backend cache keys its variant: another language is another call.
        assert (await gw.get("/v1/group/a", headers={"accept-language": "de"})).status_code == 200
        assert (await gw.get("/v1/group/a", headers={"accept-language": "fr"})).status_code == 200
    cached, grouped, uncached, german = (dict(call.metadata) for call in things.calls)
    assert len(things.calls) == 4
    for seen in (cached, grouped):
        assert "cookie" not in seen and "x-poison" not in seen and "x-forwarded-for" not in seen
        assert "x-request-id" in seen and "traceparent" in seen  # per call: never in a key
    assert grouped["accept-language"] == "fr" and "accept-language" not in cached
    assert german["accept-language"] == "de"
    # Not cached: the call carries what an HTTP backend would (SPEC §5, §7).
    assert uncached["x-poison"] == "1" and "x-forwarded-for" in uncached
