"""The ASGI app: bytes in, `Request` -> `Gateway.handle` -> `Response`, bytes out.

The same app runs under Mangum on Lambda and under uvicorn locally; it has no
framework underneath, so a request costs only what the pipeline does.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from tollway.core.headers import request_id, well_formed
from tollway.core.messages import Request, Response
from tollway.core.problems import problem_response
from tollway.core.trace import trace_context
from tollway.errors import BadRequest, PayloadTooLarge
from tollway.gateway import Gateway
from tollway.observability import bind_request_id
from tollway.routing import canonical_path

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# RFC 3986 pchar plus "/": what may stay unescaped when re-encoding a decoded path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Bytes no URL may carry. Uvicorn refuses them in a query; an API Gateway event need not.
_NOT_IN_URL = re.compile(rb"[\x00-\x20\x7f-\xff]")
# A Host field: a DNS name or an IP literal, and a port. No userinfo, no list, no space.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


def url_safe_query(query: bytes) -> bytes:
    """The query as sent, with control bytes, spaces and non-ASCII bytes percent-encoded,
    so that forwarding it can only ever produce a valid backend URL with the caller's bytes."""
    if _NOT_IN_URL.search(query) is None:
        return query
    return _NOT_IN_URL.sub(lambda m: b"%%%02X" % m.group()[0], query)


class GatewayApp:
    def __init__(
        self,
        gateway: Gateway,
        *,
        on_startup: list[Callable[[], Awaitable[None]]] | None = None,
        on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
        runtime_trace: Callable[[], str | None] | None = None,
    ) -> None:
        self.gateway = gateway
        # The trace header of the current invocation, where a runtime gives one (Lambda's
        # _X_AMZN_TRACE_ID, read by the adapter: this app reads no environment).
        self.runtime_trace = runtime_trace
        self.max_body = gateway.config.defaults.max_body_bytes
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for hook in self.on_startup:
                    await hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrived = time.monotonic()
        # One reading on both hosts: a repeated field joined with "," (as API Gateway joins
        # it), and cookies as one list of pairs (API Gateway splits them into `cookies`).
        headers: dict[str, str] = {}
        cookies: list[str] = []
        hosts = 0
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            hosts += name == "host"
            if not well_formed(name, value):
                continue  # dropped, like a field nginx ignores: it could only split a backend's head
            if name == "cookie":
                cookies += [pair for pair in (p.strip() for p in value.split(";")) if pair]
            elif name in headers:
                headers[name] += "," + value
            else:
                headers[name] = value
        if cookies:
            headers["cookie"] = "; ".join(cookies)
        rid = request_id(headers.get("x-request-id"))
        host = headers.get("host")
        if hosts > 1 or (host and _HOST.fullmatch(host) is None):
            # RFC 9112 §3.2: one Host, a host and port, or 400. The gateway, its cache key
            # and the backend reading X-Forwarded-Host would each pick their own host of
            # `a.example,evil.example` (API Gateway joins a repeated field with ",").
            refused = problem_response(BadRequest("the request must name one host, as host[:port]"), rid)
            refused.headers += [("x-request-id", rid), ("connection", "close")]
            await _send(send, refused, head=scope["method"] == "HEAD")
            return
        trace = trace_context(headers, self.runtime_trace() if self.runtime_trace is not None else None)
        bind_request_id(rid, trace.trace_id)
        client = scope.get("client")
        raw_path = scope.get("raw_path")
        path = canonical_path(raw_path or quote(scope["path"], safe=_PATH_SAFE).encode())
        request = Request(
            method=scope["method"],
            path=scope["path"],
            query_string=url_safe_query(scope.get("query_string", b"")),
            headers=headers,
            body=b"",
            client_ip=client[0] if client else "",
            scheme=scope.get("scheme", "http"),
            request_id=rid,
            trace=trace,
        )
        try:
            if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
                # A body's arrival is part of its route's deadline: a caller that stops
                # sending holds its request (and its connection) no longer than that.
                limit = self.gateway.time_limit(request.method, path)
                async with asyncio.timeout(arrived + limit - time.monotonic()):
                    request.body = await _read_body(receive, headers.get("content-length"), self.max_body)
            else:
                request.body = await _read_body(receive, None, self.max_body)
        except PayloadTooLarge:
            # The route's own step answers 413, so the request is still matched and metered.
            request.oversize = True
        except _Truncated:
            # Likewise a 400 from the route's first step: a part of a body is never forwarded.
            request.truncated = True
        except TimeoutError:
            # Likewise a 408; the rest of the body is never read, so the connection closes.
            request.late = True
        response = await self.gateway.handle(request, path, arrived)
        if request.late:
            response.headers.append(("connection", "close"))
        await _send(send, response, head=request.method == "HEAD")


class _Truncated(Exception):
    """The server saw the connection end before the body's last byte (or last chunk)."""


async def _read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # The server only says `more_body: false` once the framing (Content-Length or
            # the zero-length chunk) is complete: a disconnect before it is a cut body.
            raise _Truncated
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, response: Response, head: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.stream is not None:
        await _stream(send, headers, response, head)
        return
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def _stream(send: Send, headers: list[tuple[bytes, bytes]], response: Response, head: bool) -> None:
    """An event stream, each chunk sent as it arrives (uvicorn writes it at once; Mangum
    collects the chunks into one buffered answer). Read to its end even for HEAD or a caller
    that left: the stream's end is where its usage is counted and recorded."""
    assert response.stream is not None
    stream = response.stream
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        async for chunk in stream:
            if chunk and not head:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
