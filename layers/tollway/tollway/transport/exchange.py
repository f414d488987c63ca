"""One HTTP request and its raw response, without an HTTP client's model layer.

The gateway's own calls (backends, DynamoDB) need a status, headers, the body in chunks
and nothing else; building `httpx.Request`/`httpx.Response` objects around each one cost
more CPU than the I/O underneath. An `Exchanger` sends one request:

    AiohttpExchanger   production: one shared `aiohttp.ClientSession` (no cookie jar, no
                       redirects), created on first use inside the running event loop
    HttpxExchanger     any `httpx.AsyncBaseTransport` (tests: `httpx.MockTransport`, a
                       counting wrapper, httpx's own transport)

Both raise the same errors, each `from` the client's own:

    ExchangeError      no usable response: the connection broke, the answer was malformed
      Refused          the connection could not be made: nothing was sent
      ConnectTimeout   no connection within the request's timeout
      ReadTimeout      connected, but the answer did not come within the request's timeout

Header values are text standing for latin-1 bytes: a response's arrive exactly as sent;
a request's go out as those bytes (aiohttp writes UTF-8, so a value whose bytes are not
UTF-8 goes out as the UTF-8 of its text, as it did through httpx-aiohttp).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol
from urllib.parse import quote

import aiohttp
import httpx
from yarl import URL


class ExchangeError(Exception):
    """No usable response; `__cause__` is the HTTP client's own error."""


class Refused(ExchangeError):
    pass


class ConnectTimeout(ExchangeError):
    pass


class ReadTimeout(ExchangeError):
    pass


class ResponseHeaders:
    """A response's header fields as received: lower-case names, latin-1 values, in order."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, name: str) -> str | None:
        """All values of `name`, joined with ", " (as httpx.Headers.get), or None."""
        key = name.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in self._raw if k.lower() == key]
        return ", ".join(found) if found else None

    def multi_items(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in self._raw]


class RawResponse(Protocol):
    status: int
    headers: ResponseHeaders

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    async def close(self) -> None: ...


class Exchanger(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        decode: bool = False,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send one request; `decode`: undo the body's content-encoding; `timeout`: seconds
        for connecting and for each read (None: the caller bounds the whole call)."""
        ...


# --- aiohttp ---------------------------------------------------------------------------


# The caller bounds the whole call (asyncio.timeout): no limit of aiohttp's own.
UNBOUNDED = aiohttp.ClientTimeout()


class SharedSession:
    """One `aiohttp.ClientSession` per container, made on first call (inside the running
    loop, where aiohttp must create it); also `AiohttpTransport(client=...)`'s factory, so
    httpx's own requests (JWKS) and the direct calls share one pool."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        self.limits = limits
        self.ssl_context = ssl_context
        self.session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self.session is None:
            # aiohttp has no separate keep-alive cap: `max_keepalive_connections` has no say.
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0,
                keepalive_timeout=self.limits.keepalive_expiry,
                ssl=self.ssl_context,
            )
            self.session = aiohttp.ClientSession(
                connector=connector,
                # A shared jar would send one caller's cookies with the next caller's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                timeout=UNBOUNDED,
                trust_env=False,
            )
        return self.session


def _aiohttp_error(exc: Exception) -> ExchangeError:
    if isinstance(exc, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return Refused(str(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(str(exc))
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return ReadTimeout(str(exc))
    return ExchangeError(f"{type(exc).__name__}: {exc}")


# Characters a URL may carry as themselves (RFC 3986), `#` aside: a request has no fragment.
_NOT_URL = re.compile(r"[^A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]")


def wire_url(url: str) -> URL:
    """The URL exactly as the gateway built it. yarl's own reading re-spells a path: `%3B`
    becomes `;` (a path parameter to Tomcat, Jetty and Spring, so `/items/admin%3Bx` would
    be routed as `/items/admin`), `%40`, `%3D`... their characters, and `%2E%2E` segments
    are resolved away. Only characters no URL may hold are escaped (as UTF-8)."""
    if _NOT_URL.search(url) is not None:
        url = _NOT_URL.sub(lambda m: quote(m.group(), safe=""), url)
    return URL(url, encoded=True)


def _to_wire(value: str) -> str:
    # aiohttp writes header text as UTF-8; this text stands for latin-1 bytes.
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


class AiohttpResponse:
    __slots__ = ("status", "headers", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self.headers = ResponseHeaders(response.raw_headers)
        self._response = response

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise _aiohttp_error(exc) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise _aiohttp_error(exc) from exc

    async def close(self) -> None:
        # A body not read to its end closes the connection instead of pooling it.
        self._response.release()
        await self._response.wait_for_close()


class AiohttpExchanger:
    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.factory = session
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        self._session = self.factory()
        return self._session

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        if seconds is None:
            return UNBOUNDED
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(connect=seconds, sock_connect=seconds, sock_read=seconds)
            self._timeouts[seconds] = timeout
        return timeout

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        decode: bool = False,
        timeout: float | None = None,
    ) -> AiohttpResponse:
        wire = [(k, _to_wire(v)) for k, v in headers]
        try:
            session = self._session or self._open()
            response = await session.request(
                method,
                wire_url(url),
                headers=wire,
                data=body or None,
                allow_redirects=False,
                auto_decompress=decode,
                timeout=self._timeout(timeout),
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise _aiohttp_error(exc) from exc
        return AiohttpResponse(response)


# --- httpx -----------------------------------------------------------------------------


def _httpx_error(exc: Exception) -> ExchangeError:
    # httpx-aiohttp reports aiohttp's ClientConnectorError (refused, DNS, TLS handshake) as
    # httpx.ConnectTimeout: the cause tells what happened.
    refused = (httpx.ConnectError, aiohttp.ClientConnectorError, ConnectionRefusedError)
    if isinstance(exc, refused) or isinstance(exc.__cause__, refused):
        return Refused(str(exc))
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ConnectTimeout(str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimeout(str(exc))
    return ExchangeError(f"{type(exc).__name__}: {exc}")


class HttpxResponse:
    __slots__ = ("status", "headers", "_response", "_decode")

    def __init__(self, response: httpx.Response, decode: bool) -> None:
        self.status = response.status_code
        self.headers = ResponseHeaders(response.headers.raw)
        self._response = response
        self._decode = decode

    async def chunks(self) -> AsyncIterator[bytes]:
        response = self._response
        try:
            # The stream itself for the raw body: a response built with its content
            # (MockTransport) has already been read, and its stream can be read again.
            async for chunk in response.aiter_bytes() if self._decode else response.stream:
                yield chunk
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            raise _httpx_error(exc) from exc

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def close(self) -> None:
        await self._response.aclose()


class HttpxExchanger:
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        decode: bool = False,
        timeout: float | None = None,
    ) -> HttpxResponse:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        extensions = (
            {}
            if timeout is None
            else {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)}
        )
        request = httpx.Request(method, url, headers=raw, content=body, extensions=extensions)
        try:
            response = await self.transport.handle_async_request(request)
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            raise _httpx_error(exc) from exc
        return HttpxResponse(response, decode)
