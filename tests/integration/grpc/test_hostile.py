"""Hostile input at a gRPC route: a body that does not fit the message is a 400 and the
service receives nothing; a service that answers garbage, closes or never answers gets
the documented status within the deadline; its INTERNAL messages never reach the caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.grpc_backends import RawServer, ThingsServer, as_json, thing, wait_for_cancel
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import Reply, Scripted, gateway

CREATE = "tollway.test.v1.Things/Create"
GET = "tollway.test.v1.Things/Get"
ROUTES = [
    {
        "id": "create",
        "path": "/v1/things",
        "methods": ["POST"],
        "backends": [{"name": "t", "service": "t", "grpc": CREATE}],
    },
    {
        "id": "get",
        "path": "/v1/things/{id}",
        "timeout_ms": 800,
        "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}", "version": "{id}"}}],
    },
]


def deep(levels: int) -> dict:
    value: dict = {"id": "leaf"}
    for _ in range(levels):
        value = {"child": value}
    return value


def deep_struct(levels: int) -> dict:
    value: object = 1
    for _ in range(levels):
        value = {"k": value}
    return {"extra": value}


MISFITS = {
    "not JSON": b"{'id': 1",
    "unknown field": b'{"id": "a", "nope": 1}',
    "unknown nested field": b'{"child": {"nope": 1}}',
    "string for int32": b'{"small": "twelve"}',
    "float for int32": b'{"small": 1.5}',
    "object for string": b'{"id": {"a": 1}}',
    "list for a message": b'{"child": [1]}',
    "scalar for repeated": b'{"tags": "a"}',
    "non-integer string for int64": b'{"big": "12a"}',
    "int64 overflow as number": b'{"big": 9223372036854775808}',
    "int64 overflow as string": b'{"big": "9223372036854775808"}',
    "int64 underflow": b'{"big": "-9223372036854775809"}',
    "uint64 negative": b'{"ubig": -1}',
    "uint64 overflow": b'{"ubig": "18446744073709551616"}',
    "int32 overflow": b'{"small": 2147483648}',
    "huge integer": b'{"big": 1' + b"0" * 400 + b"}",
    "unknown enum name": b'{"kind": "SPROCKET"}',
    "bad timestamp": b'{"at": "yesterday"}',
    "two members of a oneof": b'{"text": "a", "number": 1}',
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"thing"',
    "null": b"null",
    "deep nesting of a message": orjson.dumps(deep(150)),
    "deep nesting of a Struct": orjson.dumps(deep_struct(200)),
    "nesting past the JSON parser": b'{"extra": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001,
}


@pytest.fixture(scope="module")
def module_things() -> Iterator[ThingsServer]:
    server = ThingsServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("name", sorted(MISFITS))
async def test_a_body_that_does_not_fit_is_a_400_and_nothing_is_sent(
    tmp_path: Path, things: ThingsServer, name: str
) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, ROUTES)) as (gw, _):
        response = await gw.post("/v1/things", content=MISFITS[name])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert things.calls == []


async def test_a_path_value_that_does_not_fit_is_a_400_and_nothing_is_sent(
    tmp_path: Path, things: ThingsServer
) -> None:
    # `version` is an int64 from the path: "abc" is no integer, 2^63 overflows.
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, ROUTES)) as (gw, _):
        assert (await gw.get("/v1/things/abc")).status_code == 400
        assert (await gw.get("/v1/things/9223372036854775808")).status_code == 400
        assert (await gw.get("/v1/things/9223372036854775807")).status_code == 200
    assert [as_json("GetRequest", c.request)["version"] for c in things.calls] == ["9223372036854775807"]


INTEGERS = st.integers(-(2**63), 2**64 - 1)  # what JSON encoders here write
JSON_SCALARS = st.none() | st.booleans() | INTEGERS | st.floats(allow_nan=False) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
KNOWN = {
    "id", "displayName", "display_name", "big", "ubig", "small", "ratio", "flag", "kind", "tags", "counts",
    "child", "blob", "at", "extra", "maybe", "text", "number",
}  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(st.sampled_from(sorted(KNOWN)), JSON_VALUES, max_size=4),
    unknown=st.text(min_size=1, max_size=12).filter(lambda k: k not in KNOWN and not k.startswith("[")),
    value=JSON_VALUES,
)
async def test_any_unknown_field_is_a_400_and_nothing_is_sent(
    tmp_path: Path, module_things: ThingsServer, fields: dict, unknown: str, value: object
) -> None:
    before = len(module_things.calls)
    async with gateway(grpc_infra(tmp_path, {"t": module_things.url}, ROUTES)) as (gw, _):
        response = await gw.post("/v1/things", content=orjson.dumps({**fields, unknown: value}))
    assert response.status_code == 400
    assert len(module_things.calls) == before


THINGS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10),
        "big": st.integers(-(2**63), 2**63 - 1) | st.integers(-(2**63), 2**63 - 1).map(str),
        "ubig": st.integers(0, 2**64 - 1).map(str),
        "small": st.integers(-(2**31), 2**31 - 1),
        "flag": st.booleans(),
        "kind": st.sampled_from(["KIND_UNSPECIFIED", "WIDGET", "GADGET"]),
        "tags": st.lists(st.text(max_size=5), max_size=3),
        "counts": st.dictionaries(st.text(min_size=1, max_size=4), st.integers(-(2**63), 2**63 - 1)),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=THINGS)
async def test_a_body_that_fits_arrives_as_that_message_and_comes_back_canonical(
    tmp_path: Path, module_things: ThingsServer, body: dict
) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": module_things.url}, ROUTES)) as (gw, _):
        response = await gw.post("/v1/things", content=orjson.dumps(body))
    assert response.status_code == 200, response.text
    assert module_things.calls[-1].request == thing(**body)  # exactly the message the JSON means
    answer = response.json()
    for key in ("big", "ubig"):
        if key in body and int(body[key]) != 0:
            assert answer[key] == str(int(body[key]))  # 64-bit integers as strings
    if body.get("small"):
        assert answer["small"] == body["small"]
    if body.get("counts"):
        assert answer["counts"] == {k: str(v) for k, v in body["counts"].items()}
    # Unset (default) fields are omitted; an `id` of "0" is a value, not the default "".
    defaults = {"id": "", "big": "0", "ubig": "0", "small": 0, "flag": False, "kind": "KIND_UNSPECIFIED"}
    assert all(v not in ([], {}) and v != defaults.get(k) for k, v in answer.items()), answer


# ---- services that misbehave ------------------------------------------------------------


def internal(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.INTERNAL, "Traceback: KeyError at /srv/catalog/db.py:88 (dsn=pg://admin:pw@db)")


async def test_internal_messages_never_reach_the_caller(tmp_path: Path) -> None:
    things = ThingsServer({"Get": internal}).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, ROUTES)) as (gw, _):
            response = await gw.get("/v1/things/1")
    finally:
        things.stop()
    assert response.status_code == 502
    assert "Traceback" not in response.text and "admin" not in response.text and "db.py" not in response.text
    assert response.json()["detail"] == "backend t failed: gRPC status INTERNAL"


async def test_a_service_that_never_answers_is_a_504_by_the_deadline(tmp_path: Path) -> None:
    def hang(request: bytes, context: grpc.ServicerContext) -> bytes:
        wait_for_cancel(context)
        return b""

    things = ThingsServer({"Get": hang}).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, ROUTES)) as (gw, _):
            started = time.monotonic()
            response = await gw.get("/v1/things/1")
            elapsed = time.monotonic() - started
    finally:
        things.stop()
    assert response.status_code == 504
    assert 0.7 < elapsed < 1.3  # the route's 800 ms, not the service's 10 s


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"\x00" * 64,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" * 3,
    ],
    ids=["silent", "http1", "zeros", "bad-http2"],
)
async def test_a_server_that_is_no_grpc_service(tmp_path: Path, garbage: bytes | None) -> None:
    raw = RawServer(garbage).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": raw.url}, ROUTES)) as (gw, _):
            started = time.monotonic()
            response = await gw.get("/v1/things/1")
            elapsed = time.monotonic() - started
    finally:
        raw.stop()
    assert raw.accepted >= 1
    assert response.status_code == (504 if garbage is None else 502), response.text
    assert elapsed < 1.3
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_refused_connection_is_a_502(tmp_path: Path) -> None:
    raw = RawServer().start()
    raw.stop()  # the port is free again: nothing listens
    await asyncio.sleep(0.2)
    async with gateway(grpc_infra(tmp_path, {"t": raw.url}, ROUTES)) as (gw, _):
        response = await gw.get("/v1/things/1")
    assert response.status_code == 502


async def test_a_composed_route_sends_nothing_when_the_callers_body_does_not_fit(
    tmp_path: Path, things: ThingsServer, serve
) -> None:
    http = Scripted({"/audit": Reply(json={"ok": True})})
    route = {
        "id": "both",
        "path": "/v1/both",
        "methods": ["POST"],
        "compose": "group",
        "backends": [
            {"name": "audit", "service": "h", "path": "/audit"},
            # Runs after audit (its header names audit's field), its message from the caller alone.
            {"name": "t", "service": "t", "grpc": CREATE, "headers": {"x-audit": "{audit.ok}"}},
        ],
    }
    infra = grpc_infra(tmp_path, {"t": things.url, "h": serve(http)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.post("/v1/both", json={"id": "a", "big": "1.5"})
    assert response.status_code == 400
    assert things.calls == [] and http.seen == []
