"""No input makes the server hold memory or a descriptor beyond its limits (issue 18).

Hypothesis writes hostile byte streams (request lines and heads of any size and field
count, heads left unfinished, bodies that stop, pipelined floods, garbage) over a few
connections at once to the gateway served in a process of its own as `tollway dev` serves
it (`tests/security/served.py`, with short timers), and keeps its sockets open. For every
case: the server closes each connection itself within its limits (the head timeout, the
route's deadline, keep-alive: a few seconds here, with room), and is back to its resting
descriptors afterwards; over the whole run its memory stays within a few MB of where it
started, and a plain request still gets its answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tollway.dev.serve import serve_in_thread

from tests.backends import loopback_backend
from tests.fuzz.stack import DERANDOMIZE, EXAMPLES
from tests.infra_files import write_infra
from tests.security.served import Served, read_until_closed, served

ROUTES = """\
- id: echo
  path: /v1/echo
  methods: [GET, POST]
  public: true
  timeout_ms: 300
  backends: [{name: b, service: svc, path: /echo/x}]
"""
LIMITS = {"head_timeout_s": 0.3, "keep_alive_s": 0.3, "max_connections": 64}
# The longest a connection may live here: a head (0.3 s), then its route (0.3 s), then
# keep-alive (0.3 s), per request; room for a loaded machine on top.
HELD_AT_MOST_S = 6.0
# Each case waits for the server to close its connections: fewer of them than elsewhere.
CASES = max(10, EXAMPLES // 5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    backend = serve_in_thread(loopback_backend)
    folder = tmp_path_factory.mktemp("limits-fuzz")
    infra = write_infra(folder, {"svc": backend.url}, ROUTES)
    try:
        with served(folder, infra, LIMITS) as running:
            yield running
    finally:
        backend.stop()


TOKEN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789"), min_size=1, max_size=12)


@st.composite
def heads(draw) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"get", b"G\xc9T", b""]))
    target = b"/v1/echo" + b"a" * draw(st.sampled_from([0, 1, 9000, 11000, 70000]))
    fields = [
        (draw(TOKEN).encode(), b"v" * draw(st.sampled_from([0, 10, 5000, 12000, 300000])))
        for _ in range(draw(st.sampled_from([0, 1, 5, 99, 101, 400])))
    ]
    framing = draw(st.sampled_from([b"", b"Content-Length: 1000\r\n", b"Transfer-Encoding: chunked\r\n"]))
    head = method + b" " + target + b" HTTP/1.1\r\nHost: gw\r\n" + framing
    head += b"".join(k + b": " + v + b"\r\n" for k, v in fields)
    if draw(st.booleans()):
        head += b"\r\n" + draw(st.sampled_from([b"", b"0123456789", b"a\r\n0123", b"0\r\n\r\n"]))
    return head


STREAMS = st.one_of(
    heads(),
    heads().map(lambda h: h * 3),  # pipelined
    st.just(b"GET /v1/echo HTTP/1.1\r\nHost: gw\r\n\r\n" * 500),
    st.binary(max_size=2000),
    st.just(b""),
)


def test_no_input_makes_the_server_hold_memory_or_a_descriptor_beyond_its_limits(server: Served) -> None:
    rest = server.at_rest()
    before = server.rss_mb()
    most = 0

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(streams=st.lists(STREAMS, min_size=1, max_size=4), pieces=st.integers(1, 4))
    def case(streams: list[bytes], pieces: int) -> None:
        nonlocal most
        socks = [server.connect(HELD_AT_MOST_S) for _ in streams]
        try:
            step = max(1, max(len(s) for s in streams) // pieces)
            for start in range(0, max(len(s) for s in streams), step):
                for sock, stream in zip(socks, streams, strict=True):
                    with contextlib.suppress(OSError):  # refused and closed already
                        sock.sendall(stream[start : start + step])
                time.sleep(0.01)
            most = max(most, server.descriptors())
            started = time.monotonic()
            for sock in socks:
                try:
                    read_until_closed(sock)
                except TimeoutError:
                    raise AssertionError(f"a connection was held past {HELD_AT_MOST_S} s") from None
            assert time.monotonic() - started < HELD_AT_MOST_S * 2
        finally:
            for sock in socks:
                sock.close()
        server.settle("the case's connections", timeout_s=HELD_AT_MOST_S)

    case()
    assert most <= rest + LIMITS["max_connections"], (most, rest)
    assert server.rss_mb() - before < 32, (before, server.rss_mb())
    assert server.answer(b"GET /v1/echo HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200 "
    )
