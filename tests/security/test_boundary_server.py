"""Boundary classes only a server sees: a body cut short, and overlapping requests' logs.

An API Gateway event always holds a whole body and one invocation at a time, so these run
against the gateway under uvicorn, over raw sockets.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from tollway.observability import logger

from .boundary import Gateway, build


@pytest.fixture
def gw(aws, serve, tmp_path, monkeypatch) -> Iterator[Gateway]:
    yield from build("uvicorn", aws, serve, tmp_path, monkeypatch)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger("tollway").addHandler(handler)
    yield records
    logging.getLogger("tollway").removeHandler(handler)


def access_lines(records: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in records.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "access"]


def wait_for(condition, what: str, timeout_s: float = 10.0) -> None:
    """Wait for the server to have done something (not a timing assertion: it only bounds a hang)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def send_then_close(url: str, head: str, body: bytes, *, close: bool = True) -> bytes:
    """Send a head and (part of) a body, close our side, and read whatever comes back."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        if close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def served_url(gw: Gateway) -> str:
    return gw.send.args[0]


# ---- 6. bodies are whole or not sent ---------------------------------------------------


@pytest.mark.parametrize(
    "framing, body",
    [
        ("Content-Length: 100", b"0123456789"),
        ("Transfer-Encoding: chunked", b"5\r\nhello\r\n"),
        ("Transfer-Encoding: chunked", b"5\r\nhello\r\n0\r\n"),  # the last chunk, without its end
    ],
)
def test_a_body_that_ends_early_is_400_and_never_forwarded(gw: Gateway, log_lines, framing, body) -> None:
    head = f"POST /v1/echo/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: cut-1\r\n{framing}\r\n\r\n"
    answer = send_then_close(served_url(gw), head, body)
    wait_for(lambda: any(a["request_id"] == "cut-1" for a in access_lines(log_lines)), "the access line")
    (line,) = [a for a in access_lines(log_lines) if a["request_id"] == "cut-1"]
    assert line["status"] == 400
    if answer:  # the answer is written if the server still can; the caller has gone
        assert answer.startswith(b"HTTP/1.1 400 ")
    assert gw.backend.seen == []


def test_a_whole_chunked_body_is_forwarded_whole(gw: Gateway) -> None:
    head = "POST /v1/echo/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    answer = send_then_close(served_url(gw), head, body, close=False)
    assert answer.startswith(b"HTTP/1.1 200 ")
    (seen,) = gw.backend.seen
    assert seen.body == b"hello world"


def test_a_chunked_bodys_trailer_fields_are_never_request_fields(gw: Gateway, capsys) -> None:
    """uvicorn's httptools protocol appended trailer fields to the request's own: a field no
    proxy in front saw as a header reached the backend as one, and a key sent after the body
    authenticated the request (found attacking issue 18's fixes). RFC 9110 §6.5.1: trailers
    are not header fields; an HTTP API event has none."""
    key = gw.key(capsys, "acme")
    body = b"5\r\nhello\r\n0\r\nX-Trailer: evil\r\nCookie: session=smuggled\r\n\r\n"
    head = "POST /v1/echo/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = send_then_close(served_url(gw), head, body, close=False)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    (seen,) = gw.backend.seen
    assert seen.body == b"hello"
    assert "x-trailer" not in seen.names() and "cookie" not in seen.names()
    get = "GET /v1/who HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = send_then_close(served_url(gw), get, f"0\r\nX-API-Key: {key}\r\n\r\n".encode(), close=False)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


@pytest.mark.parametrize(
    "framing, sent",
    [
        ("Content-Length: 1000", b"0123456789"),
        ("Transfer-Encoding: chunked", b"3e8\r\n0123456789"),
        ("Content-Length: 1000", b""),
    ],
)
def test_a_body_that_stops_gets_its_answer_at_the_routes_deadline(
    gw: Gateway, log_lines, framing: str, sent: bytes
) -> None:
    """Issue 18: 10 of 1,000 bytes held a 500 ms route for as long as the caller liked."""
    head = f"POST /v1/quick HTTP/1.1\r\nHost: gw\r\nX-Request-Id: stalled-1\r\n{framing}\r\n\r\n"
    parts = urlsplit(served_url(gw))
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + sent)  # ...and then nothing more, the connection left open
        data = b""
        while chunk := sock.recv(65536):  # the server closes it after its answer
            data += chunk
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"application/problem+json" in data
    assert elapsed < 3.0, elapsed  # a bound with room for a loaded machine: the route has 500 ms
    assert gw.backend.seen == []
    wait_for(lambda: any(a["request_id"] == "stalled-1" for a in access_lines(log_lines)), "the access line")
    (line,) = [a for a in access_lines(log_lines) if a["request_id"] == "stalled-1"]
    assert line["status"] == 408 and line["route"] == "quick"


# ---- 9. the log carries the right request id -------------------------------------------


def test_overlapping_requests_each_log_their_own_id(gw: Gateway, log_lines) -> None:
    slow = threading.Thread(target=gw.send, args=("GET", "/v1/slow/400", [("x-request-id", "req-slow")]))
    slow.start()
    wait_for(lambda: len(gw.backend.seen) == 1, "the slow request to reach its backend")
    # While the slow one is in flight, a second request starts and finishes.
    assert gw.send("GET", "/v1/echo/x", [("x-request-id", "req-fast")]).status == 200
    slow.join(10)
    lines = access_lines(log_lines)
    assert sorted(a["request_id"] for a in lines) == ["req-fast", "req-slow"]
    assert all(a["correlation_id"] == a["request_id"] for a in lines), lines
