"""JSON routes in front of a real gRPC service on loopback (SPEC §7): what the service
receives, what the caller gets back, and the status table."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import grpc
import orjson
import pytest

from tests.grpc_backends import ThingsServer, as_json, thing
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import Recorder, gateway

GET = "tollway.test.v1.Things/Get"
CREATE = "tollway.test.v1.Things/Create"


def routes(*extra: dict) -> list[dict]:
    return [
        {
            "id": "get",
            "path": "/v1/things/{id}",
            "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}", "version": "7"}}],
        },
        {
            "id": "create",
            "path": "/v1/things",
            "methods": ["POST", "PUT", "GET"],
            "backends": [{"name": "t", "service": "t", "grpc": CREATE}],
        },
        *extra,
    ]


async def test_a_get_sends_the_body_template_as_the_request_message(
    tmp_path: Path, things: ThingsServer
) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
        response = await gw.get("/v1/things/abc")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Canonical proto3 JSON: lowerCamelCase, int64 as a string, unset fields omitted.
    assert response.json() == {"id": "abc", "displayName": "thing abc", "big": "7"}
    [call] = things.calls
    assert call.method == "Get"
    assert as_json("GetRequest", call.request) == {"id": "abc", "version": "7"}


async def test_the_callers_json_body_is_read_as_proto3_json(tmp_path: Path, things: ThingsServer) -> None:
    body = {
        "id": "x",
        "display_name": "proto name",  # both spellings are read
        "big": "-9223372036854775808",  # int64 as a decimal string
        "ubig": 18446744073709551615,  # uint64 as a number
        "small": "12",
        "ratio": 0.5,
        "flag": True,
        "kind": "GADGET",
        "tags": ["a", "b"],
        "counts": {"k": "3"},
        "child": {"id": "c", "kind": 1},  # an enum by number
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "at": "2026-12-07T10:00:00.5Z",
        "extra": {"any": ["json", 1, None]},
        "maybe": "5",
        "text": "one of",
    }
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
        response = await gw.post("/v1/things", json=body)
    assert response.status_code == 200, response.text
    received = as_json("Thing", things.calls[0].request)
    assert received["display_name"] == "proto name"
    assert received["big"] == "-9223372036854775808"
    assert received["ubig"] == "18446744073709551615"
    assert received["small"] == 12 and received["kind"] == "GADGET" and received["child"]["kind"] == "WIDGET"
    assert base64.b64decode(received["blob"]) == b"\x00\xff"
    # The echoed message comes back in the canonical mapping: camelCase names, 64-bit
    # integers as strings, enums by name, timestamps in RFC 3339.
    answer = response.json()
    assert answer["displayName"] == "proto name"
    assert answer["ubig"] == "18446744073709551615"
    assert answer["counts"] == {"k": "3"}
    assert answer["child"] == {"id": "c", "kind": "WIDGET"}
    assert answer["at"] == "2026-12-07T10:00:00.500Z"
    assert answer["extra"] == {"any": ["json", 1, None]}
    assert answer["maybe"] == "5" and answer["text"] == "one of"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_no_body_is_an_empty_message(tmp_path: Path, things: ThingsServer, method: str) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
        response = await gw.request(method, "/v1/things")
    assert response.status_code == 200
    assert things.calls[0].request == b""
    assert response.json() == {}


async def test_a_get_never_sends_the_callers_body(tmp_path: Path, things: ThingsServer) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
        response = await gw.request("GET", "/v1/things", content=b'{"id": "from the body"}')
    assert response.status_code == 200
    assert things.calls[0].request == b""


# SPEC §7's status table: the service's status on a proxy route.
TABLE = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "DEADLINE_EXCEEDED": 504,
    "UNKNOWN": 502,
    "INTERNAL": 502,
    "UNAVAILABLE": 502,
    "UNIMPLEMENTED": 502,
    "DATA_LOSS": 502,
    "CANCELLED": 502,
}


@pytest.mark.parametrize("code", sorted(TABLE))
async def test_a_status_is_the_problem_the_table_names(tmp_path: Path, code: str) -> None:
    message = f"service says {code.lower()}: at db.py line 12, password=hunter2"

    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(getattr(grpc.StatusCode, code), message)

    things = ThingsServer({"Get": refuse}).start()
    usage = Recorder()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes()), usage=usage) as (gw, _):
            response = await gw.get("/v1/things/abc")
    finally:
        things.stop()
    status = TABLE[code]
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    if status < 500:
        assert problem["detail"] == message  # the service's refusal, in its words
    else:
        assert "hunter2" not in response.text and "db.py" not in response.text
    if status == 401:
        assert response.headers["www-authenticate"]
    assert [(b.name, b.status, b.grpc_status) for b in usage.exchanges[-1].backends] == [("t", status, code)]


async def test_ok_is_recorded_as_200_and_ok(tmp_path: Path, things: ThingsServer) -> None:
    usage = Recorder()
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes()), usage=usage) as (gw, _):
        assert (await gw.get("/v1/things/a")).status_code == 200
    [outcome] = usage.exchanges[-1].backends
    assert (outcome.status, outcome.grpc_status) == (200, "OK")


async def test_a_reply_that_is_not_the_message_is_a_502(tmp_path: Path) -> None:
    things = ThingsServer({"Get": lambda request, context: b"\xff\xff\xff\xff garbage"}).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
            response = await gw.get("/v1/things/a")
    finally:
        things.stop()
    assert response.status_code == 502
    assert "garbage" not in response.text
    assert response.json()["detail"] == "backend t failed: its answer is not a tollway.test.v1.Thing message"


async def test_the_services_response_metadata_is_not_passed_on(tmp_path: Path) -> None:
    def with_metadata(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.send_initial_metadata((("x-internal-host", "db-7"),))
        context.set_trailing_metadata((("x-debug", "secret"),))
        return thing(id="a")

    things = ThingsServer({"Get": with_metadata}).start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
            response = await gw.get("/v1/things/a")
    finally:
        things.stop()
    assert response.status_code == 200
    assert "x-internal-host" not in response.headers and "x-debug" not in response.headers


async def test_an_oversized_reply_is_a_502(tmp_path: Path) -> None:
    big = thing(id="x" * 5000)
    things = ThingsServer({"Get": lambda request, context: big}).start()
    try:
        infra = grpc_infra(tmp_path, {"t": things.url}, routes(), max_response_bytes=4096)
        async with gateway(infra) as (gw, _):
            response = await gw.get("/v1/things/a")
    finally:
        things.stop()
    assert response.status_code == 502
    assert "exceeds 4096 bytes" in response.json()["detail"]


async def test_each_call_reuses_the_instances_channel(tmp_path: Path, things: ThingsServer) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, upstream):
        for _ in range(5):
            assert (await gw.get("/v1/things/a")).status_code == 200
        assert len(upstream.grpc().channels._by_url) == 1
    assert len({c.peer for c in things.calls}) == 1  # one connection served every call


async def test_the_deadline_reaches_the_service_as_grpc_timeout(tmp_path: Path, things: ThingsServer) -> None:
    route = {
        "id": "timed",
        "path": "/v1/timed/{id}",
        "timeout_ms": 1500,
        "backends": [{"name": "t", "service": "t", "grpc": GET, "body": {"id": "{id}"}, "timeout_ms": 700}],
    }
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes(route))) as (gw, _):
        started = time.monotonic()
        assert (await gw.get("/v1/timed/a")).status_code == 200
    remaining = things.calls[0].time_remaining
    assert remaining is not None and 0.4 < remaining <= 0.7
    assert time.monotonic() - started < 1.0


async def test_a_json_body_never_reaches_the_service_as_bytes(tmp_path: Path, things: ThingsServer) -> None:
    # The body is a message, not the caller's bytes: the service gets protobuf.
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes())) as (gw, _):
        response = await gw.post("/v1/things", content=orjson.dumps({"id": "a"}))
    assert response.status_code == 200
    assert things.calls[0].request == thing(id="a")


@pytest.mark.parametrize("member", ["display_name", "displayname", "Display_Name"])
async def test_a_validated_field_goes_only_by_the_name_the_schema_checks(
    tmp_path: Path, things: ThingsServer, member: str
) -> None:
    """protobuf's JSON reader takes a field by its proto name (`display_name`) as well as its
    JSON name (`displayName`): a schema that checks `displayName` (at most 5 characters) let
    `{"display_name": "<long>"}` through to the service as that field (found attacking the
    case rule). A declared member is given spelled as declared, underscores included."""
    route = {
        "id": "checked",
        "path": "/v1/checked",
        "methods": ["POST"],
        "validate": {"body": {"properties": {"displayName": {"type": "string", "maxLength": 5}}}},
        "backends": [{"name": "t", "service": "t", "grpc": CREATE}],
    }
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, routes(route))) as (gw, _):
        refused = await gw.post("/v1/checked", json={"id": "x", member: "far longer than five"})
        passed = await gw.post("/v1/checked", json={"id": "y", "displayName": "short"})
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert passed.status_code == 200, passed.text
    assert [as_json("Thing", call.request) for call in things.calls] == [{"id": "y", "display_name": "short"}]
