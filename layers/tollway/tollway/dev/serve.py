"""Serve an ASGI app under uvicorn with the limits a production edge has (`tollway dev`,
tests, bench, and anyone who serves the gateway themselves).

uvicorn's httptools protocol reads a request head without bound (a 20 MiB field is
buffered whole, quadratically), never closes a connection that sends nothing or half a
head, and takes every connection the kernel hands it. `LimitedHttpTools` adds, per
`ServerLimits`:

- the head: at most `max_request_line_and_values` bytes of request line and field values
  (API Gateway's own quota for an HTTP API), `max_head_bytes` in all, and
  `max_header_fields` fields: 431 (414 for the request line alone), then the connection
  closes; memory per connection stays within the head limit and one read;
- `head_timeout_s` from a connection's start, or from a head's first byte, to that head's
  end: 408 (or a close, if nothing came), so idle and half-sent heads cannot hold a
  descriptor; `keep_alive_s` of silence after an answer closes the connection (uvicorn's
  own `timeout_keep_alive`);
- at most `max_pipelined` requests queued behind the one in progress on a connection;
- a chunked body's trailer fields are dropped, never added to the request's fields;
- at most `max_connections` open connections: the next one is answered 503 and closed.

A request's body is bounded by the app itself: `max_body_bytes` (413), and its arrival
by the route's deadline (408, tollway/http/app.py).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class ServerLimits:
    max_request_line_and_values: int = 10_240
    max_head_bytes: int = 16_384
    max_header_fields: int = 100
    head_timeout_s: float = 10.0
    keep_alive_s: float = 5
    max_pipelined: int = 16
    max_connections: int = 512


DEFAULT_LIMITS = ServerLimits()


class HeadRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REASONS = {
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `ServerLimits` (module docstring).
    `uvicorn --http tollway.dev.serve:LimitedHttpTools` serves with the defaults."""

    limits: ClassVar[ServerLimits] = DEFAULT_LIMITS

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Bytes count toward a head from the connection's start and from each message's end
        # until the next head is complete (so a head and the bytes before it, at most).
        self._counting = True
        self._head_bytes = 0
        self._begun = False  # a head has begun and is not complete
        self._line_and_values = 0  # of that head, as API Gateway counts them
        self._parsed = 0  # of that head in all: its target and fields, as parsed
        self._fields = 0
        self._head_timer: Any = None
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "the server has as many connections as it takes; try again shortly")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._counting:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, HeadRefused):
                self._refuse(refused.status, refused.reason)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._counting and self._head_bytes > self.limits.max_head_bytes:
            # A head still incomplete past the limit: httptools would buffer all of it.
            self._refuse(431, "the request head is too large")

    # Parser callbacks: a head is counted as it is parsed, and refused as soon as it is over.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._line_and_values = self._parsed = self._fields = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._line_and_values += len(url)
        self._parsed += len(url)
        if len(self.url) > self.limits.max_request_line_and_values:
            raise HeadRefused(414, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._begun:
            super().on_header(name, value)
        # else a chunked body's trailer field: uvicorn would append it to the request's
        # fields (the list its scope already holds), so a field no proxy in front saw as a
        # header, an API key even, would reach the app as one. Dropped (RFC 9110 §6.5.1),
        # but counted against the limits like any field.
        self._fields += 1
        self._line_and_values += len(value)
        self._parsed += len(name) + len(value) + 4  # ": " and CRLF
        if self._fields > self.limits.max_header_fields:
            raise HeadRefused(431, f"a request head may have at most {self.limits.max_header_fields} fields")
        if (
            self._line_and_values > self.limits.max_request_line_and_values
            or self._parsed > self.limits.max_head_bytes
        ):
            raise HeadRefused(431, "the request head is too large")

    def on_headers_complete(self) -> None:
        self._counting = self._begun = False
        self._head_bytes = 0
        self._disarm_head_timer()
        if len(self.pipeline) >= self.limits.max_pipelined:
            raise HeadRefused(503, "too many requests queued on one connection")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._counting = True

    # Timers

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._begun:
            self._refuse(408, "the request head did not arrive in time")
        elif self.cycle is None or self.cycle.response_complete:
            self.transport.close()  # nothing was sent: an idle connection

    def _refuse(self, status: int, reason: str) -> None:
        """Answer with `status` (before any request of this connection is answered) and close."""
        self._disarm_head_timer()
        if self.cycle is None or self.cycle.response_complete:
            body = reason.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, _REASONS[status].encode(), len(body), body)
            )
        self.transport.close()


def limited(limits: ServerLimits = DEFAULT_LIMITS) -> type[LimitedHttpTools]:
    """The protocol class for `limits` (uvicorn builds one protocol per connection)."""
    if limits == DEFAULT_LIMITS:
        return LimitedHttpTools
    return type("LimitedHttpTools", (LimitedHttpTools,), {"limits": limits})


def server_config(
    app: Any, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits = DEFAULT_LIMITS, **config: Any
) -> uvicorn.Config:
    """uvicorn's configuration for serving the gateway: uvloop, httptools with `limits`, no
    proxy headers (the socket peer is the caller), no `Server` field."""
    defaults = {"log_level": "warning", "lifespan": "auto", "server_header": False, "proxy_headers": False}
    config = {**defaults, **config}
    return uvicorn.Config(
        app, host=host, port=port, http=limited(limits), timeout_keep_alive=limits.keep_alive_s, **config
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ServedApp:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits = DEFAULT_LIMITS, **config: Any
) -> ServedApp:
    """`app` served in a background thread, with `limits` (a test backend may misbehave
    as it likes: the limits apply to what the server reads)."""
    port = port or free_port(host)
    config.setdefault("timeout_graceful_shutdown", 0.5)
    server = uvicorn.Server(server_config(app, host, port, limits, **config))
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on {host}:{port} did not start")
        time.sleep(0.01)
    return ServedApp(server, thread, host, port)
