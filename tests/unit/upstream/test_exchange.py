"""The container's exchanger against a real backend on loopback: answers, errors, its pool."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from tollway.transport.exchange import AiohttpExchanger, Exchanger, ReadTimeout, Refused

PLAIN = orjson.dumps({"hello": "world", "padding": "x" * 200})


async def backend(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    status, headers, body = 200, [(b"content-type", b"application/json")], b"{}"
    if path == "/hello":
        status = 201
        headers += [(b"x-multi", b"a"), (b"X-Multi", b"b"), (b"x-bytes", b"caf\xc3\xa9 \xe9")]
        body = PLAIN
    elif path == "/echo":
        message = await receive()
        seen = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = orjson.dumps({"method": scope["method"], "headers": seen, "body": message["body"].decode()})
    elif path == "/gzip":
        headers.append((b"content-encoding", b"gzip"))
        body = gzip.compress(PLAIN)
    elif path == "/login":
        headers.append((b"set-cookie", b"session=alice-secret; Path=/"))
    elif path == "/cookie":
        body = orjson.dumps({"cookie": dict(scope["headers"]).get(b"cookie", b"").decode()})
    elif path == "/slow":
        await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def exchanger() -> AsyncIterator[Exchanger]:
    made = AiohttpExchanger()
    yield made
    await made.close()


async def fetch(exchanger: Exchanger, url: str, **options) -> tuple[int, object, bytes]:
    response = await exchanger.request("GET", url, [], None, **options)
    try:
        return response.status, response.headers, b"".join([c async for c in response.chunks()])
    finally:
        await response.close()


async def test_status_headers_and_body(exchanger, serve) -> None:
    status, headers, body = await fetch(exchanger, serve(backend) + "/hello")
    assert (status, body) == (201, PLAIN)
    assert headers.get("X-MULTI") == "a, b" and headers.get("absent") is None
    items = headers.multi_items()
    assert [v for k, v in items if k == "x-multi"] == ["a", "b"]
    # Bytes pass through as latin-1 text, whatever they encode.
    assert headers.get("x-bytes").encode("latin-1") == b"caf\xc3\xa9 \xe9"


async def test_the_request_arrives_as_sent(exchanger, serve) -> None:
    headers = [("x-one", "1"), ("x-text", "caf\xc3\xa9"), ("content-type", "text/plain")]
    response = await exchanger.request("POST", serve(backend) + "/echo", headers, b"payload")
    try:
        seen = orjson.loads(await response.read())
    finally:
        await response.close()
    assert seen["method"] == "POST" and seen["body"] == "payload"
    assert seen["headers"]["x-one"] == "1" and seen["headers"]["x-text"] == "caf\xc3\xa9"


async def test_a_raw_body_keeps_its_encoding_a_decoded_one_does_not(exchanger, serve) -> None:
    url = serve(backend) + "/gzip"
    _, headers, raw = await fetch(exchanger, url)
    assert headers.get("content-encoding") == "gzip" and gzip.decompress(raw) == PLAIN
    _, _, decoded = await fetch(exchanger, url, decode=True)
    assert decoded == PLAIN


async def test_a_refused_connection_is_refused(exchanger) -> None:
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(Refused):
        await exchanger.request("GET", f"http://127.0.0.1:{port}/", [], None)


async def test_a_late_answer_is_a_read_timeout(exchanger, serve) -> None:
    with pytest.raises(ReadTimeout):
        await exchanger.request("GET", serve(backend) + "/slow", [], None, timeout=0.1)


async def test_no_cookie_is_kept_between_requests(exchanger, serve) -> None:
    # A host name, not an IP address: aiohttp's default jar ignores cookies from an IP.
    url = serve(backend).replace("127.0.0.1", "localhost")
    _, headers, _ = await fetch(exchanger, url + "/login")
    assert headers.get("set-cookie").startswith("session=alice-secret")
    _, _, body = await fetch(exchanger, url + "/cookie")
    assert orjson.loads(body) == {"cookie": ""}


async def test_one_pool_keeps_its_connection_until_closed(serve) -> None:
    exchanger = AiohttpExchanger()
    url = serve(backend)
    try:
        for _ in range(3):
            assert (await fetch(exchanger, url + "/hello"))[0] == 201
        session = exchanger._session
        assert session is not None and len(session.connector._conns) == 1
    finally:
        await exchanger.close()
    assert session.closed
    # A closed exchanger opens a new pool on its next call (a server that starts again).
    try:
        assert (await fetch(exchanger, url + "/hello"))[0] == 201
    finally:
        await exchanger.close()
