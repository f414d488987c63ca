"""Server-streaming methods: a JSON array, or Server-Sent Events when the caller asks (SPEC §7)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import orjson
import pytest

from tests.grpc_backends import ThingsServer, thing
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import Recorder, gateway

LIST = "tollway.test.v1.Things/List"
ROUTE = {
    "id": "list",
    "path": "/v1/things",
    "timeout_ms": 1000,
    "backends": [{"name": "t", "service": "t", "grpc": LIST, "body": {"count": 3, "prefix": "p"}}],
}
SSE = {"accept": "text/event-stream"}


def events(text: str) -> list[tuple[str | None, object]]:
    """(event name or None, data as JSON) of each event of a text/event-stream body."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = orjson.loads(line[len("data: ") :])
        out.append((name, data))
    return out


def serving(handler) -> ThingsServer:
    return ThingsServer({"List": handler}).start()


async def test_a_stream_is_a_json_array(tmp_path: Path, things: ThingsServer) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
        response = await gw.get("/v1/things")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [{"id": "p0"}, {"id": "p1", "small": 1}, {"id": "p2", "small": 2}]


async def test_a_stream_is_server_sent_events_when_the_caller_asks(
    tmp_path: Path, things: ThingsServer
) -> None:
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
        response = await gw.get("/v1/things", headers={"accept": "application/json, text/event-stream;q=0.9"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    # One data line per message, no end marker.
    assert response.text == (
        'data: {"id":"p0"}\n\ndata: {"id":"p1","small":1}\n\ndata: {"id":"p2","small":2}\n\n'
    )


async def test_an_empty_stream(tmp_path: Path) -> None:
    things = serving(lambda request, context: iter(()))
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
            array = await gw.get("/v1/things")
            stream = await gw.get("/v1/things", headers=SSE)
    finally:
        things.stop()
    assert (array.status_code, array.json()) == (200, [])
    assert (stream.status_code, stream.text) == (200, "")


def fails_after(count: int, code: grpc.StatusCode, message: str):
    def handler(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(count):
            yield thing(id=f"m{i}")
        context.abort(code, message)

    return handler


async def test_an_error_after_some_messages_ends_the_events_with_an_error_event(tmp_path: Path) -> None:
    things = serving(fails_after(2, grpc.StatusCode.INTERNAL, "panic: nil map in /srv/list.go:41"))
    usage = Recorder()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE]), usage=usage) as (gw, _):
            response = await gw.get("/v1/things", headers=SSE)
    finally:
        things.stop()
    assert response.status_code == 200
    got = events(response.text)
    assert got[:2] == [(None, {"id": "m0"}), (None, {"id": "m1"})]
    name, problem = got[2]
    assert name == "error" and len(got) == 3
    assert isinstance(problem, dict) and problem["status"] == 502 and problem["type"].endswith("/bad-gateway")
    assert "list.go" not in response.text and "panic" not in response.text
    assert [(b.status, b.grpc_status) for b in usage.exchanges[-1].backends] == [(502, "INTERNAL")]


async def test_an_error_after_some_messages_makes_the_array_the_problem_alone(tmp_path: Path) -> None:
    things = serving(fails_after(2, grpc.StatusCode.NOT_FOUND, "the shelf is gone"))
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
            response = await gw.get("/v1/things")
    finally:
        things.stop()
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the shelf is gone"
    assert "m0" not in response.text


async def test_an_error_before_the_first_message_is_the_problem_in_either_form(tmp_path: Path) -> None:
    things = serving(fails_after(0, grpc.StatusCode.PERMISSION_DENIED, "not your shelf"))
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
            array = await gw.get("/v1/things")
            stream = await gw.get("/v1/things", headers=SSE)
    finally:
        things.stop()
    for response in (array, stream):
        assert response.status_code == 403
        assert response.json()["detail"] == "not your shelf"


async def test_the_route_deadline_covers_the_whole_stream(tmp_path: Path) -> None:
    def trickle(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(100):
            if not context.is_active():
                return
            yield thing(id=f"m{i}")
            time.sleep(0.3)

    things = serving(trickle)
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
            started = time.monotonic()
            stream = await gw.get("/v1/things", headers=SSE)
            stream_s = time.monotonic() - started
            started = time.monotonic()
            array = await gw.get("/v1/things")
            array_s = time.monotonic() - started
    finally:
        things.stop()
    got = events(stream.text)
    assert 2 <= len(got) <= 5
    name, problem = got[-1]
    assert name == "error" and isinstance(problem, dict) and problem["status"] == 504
    assert array.status_code == 504
    assert stream_s < 1.4 and array_s < 1.4


async def test_a_service_that_closes_mid_stream(tmp_path: Path) -> None:
    things = ThingsServer()

    def close_after_two(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield thing(id="m0")
        yield thing(id="m1")
        time.sleep(0.1)
        assert things.server is not None
        threading.Thread(target=things.server.stop, args=(0,)).start()  # the whole server goes away
        time.sleep(0.5)
        yield thing(id="never")

    things.handlers["List"] = close_after_two
    things.start()
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
            started = time.monotonic()
            response = await gw.get("/v1/things", headers=SSE)
            elapsed = time.monotonic() - started
    finally:
        things.stop()
    got = events(response.text)
    assert got[:2] == [(None, {"id": "m0"}), (None, {"id": "m1"})]
    assert got[-1][0] == "error" and isinstance(got[-1][1], dict) and got[-1][1]["status"] in (502, 504)
    assert "never" not in response.text
    assert elapsed < 1.4


@pytest.mark.parametrize("accept", [None, "text/event-stream"])
async def test_a_message_that_is_garbage_mid_stream(tmp_path: Path, accept: str | None) -> None:
    def garbage(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield thing(id="m0")
        yield b"\xff\xff\xff\xff"

    things = serving(garbage)
    try:
        async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
            response = await gw.get("/v1/things", headers={"accept": accept} if accept else {})
    finally:
        things.stop()
    if accept:
        got = events(response.text)
        assert got[0] == (None, {"id": "m0"}) and got[-1][0] == "error"
    else:
        assert response.status_code == 502


@pytest.mark.parametrize("first_accept", [None, "text/event-stream"])
async def test_a_cached_stream_route_answers_each_caller_in_the_form_it_asked_for(
    tmp_path: Path, things: ThingsServer, first_accept: str | None
) -> None:
    """A server stream's answer depends on the caller's Accept (a JSON array, or events),
    so a route cache never hands one form to a caller who asked for the other: the array
    stored for a caller without Accept reached the next caller's EventSource as one JSON
    document (found attacking the caches' fixes). The answer says `Vary: Accept`."""
    route = {**ROUTE, "cache": {"ttl_s": 60, "shared": True}}
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, [route])) as (gw, _):
        first = await gw.get("/v1/things", headers={"accept": first_accept} if first_accept else {})
        array = await gw.get("/v1/things")
        stream = await gw.get("/v1/things", headers=SSE)
    assert first.status_code == array.status_code == stream.status_code == 200
    assert array.headers["content-type"] == "application/json"
    assert array.json() == [{"id": "p0"}, {"id": "p1", "small": 1}, {"id": "p2", "small": 2}]
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.text.startswith('data: {"id":"p0"}\n\n')
    assert "accept" in array.headers.get("vary", "").lower()
    assert "accept" in stream.headers.get("vary", "").lower()
