"""The container's one HTTP stack: an exchange is one request and its raw response.

Everything the router sends on the request path goes through one `Exchanger`, built once
per container by `tollway.assemble.build_app` and injected into each part: backend calls
(tollway.upstream), DynamoDB (tollway.aws.dynamodb: key lookups, quota admissions and
settles) and JWKS fetches (tollway.auth.jwt). They need a status, headers, the body in
chunks and nothing else, so there is no client model layer around a call:

    AiohttpExchanger   one `aiohttp.ClientSession` (its pool of keep-alive connections, no
                       cookie jar, no redirects), made on first use inside the running
                       event loop, so a SnapStart snapshot holds none of its connections

Tests pass a wrapper of it (counting what it sends) to `build_app`; nothing in the router
imports another HTTP client. The two other ways out of the container are blocking on
purpose, each justified where it lives: `tollway.aws.blocking` (the usage sender's thread,
the key secret at init: no event loop there) and the Lambda extension's Runtime API calls.

An exchanger raises these errors, each `from` aiohttp's own:

    ExchangeError      no usable response: the connection broke, the answer was malformed
      Refused          the connection could not be made: nothing was sent
      ConnectTimeout   no connection within the request's timeout
      ReadTimeout      connected, but the answer did not come within the request's timeout

Header values are text standing for latin-1 bytes: a response's arrive exactly as sent;
a request's go out as those bytes (aiohttp writes UTF-8, so a value whose bytes are not
UTF-8 goes out as the UTF-8 of its text).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Protocol
from urllib.parse import quote

import aiohttp
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
        """All values of `name`, joined with ", ", or None."""
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

    async def close(self) -> None:
        """Close its connections (the server's shutdown)."""
        ...


# --- aiohttp ---------------------------------------------------------------------------


# The caller bounds the whole call (asyncio.timeout): no limit of aiohttp's own.
UNBOUNDED = aiohttp.ClientTimeout()
# One container's pool: connections open at once, and how long an idle one is kept.
MAX_CONNECTIONS = 512
KEEPALIVE_S = 30.0
# Distinct timeouts an exchanger keeps made (made again past that: about 1 µs).
KEPT_TIMEOUTS = 8


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
    """`max_connections` bounds the pool (aiohttp has no separate keep-alive cap);
    an idle connection is closed after `keepalive_s`. TLS is verified against the system's
    trust store (aiohttp's default context, made when aiohttp is imported)."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS, keepalive_s: float = KEEPALIVE_S) -> None:
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=self.keepalive_s)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # A shared jar would send one caller's cookies with the next caller's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=UNBOUNDED,
            trust_env=False,
        )
        return self._session

    async def close(self) -> None:
        """Close the pool (server shutdown); the next call opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        if seconds is None:
            return UNBOUNDED
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(connect=seconds, sock_connect=seconds, sock_read=seconds)
            # Kept for the constant ones (JWKS'); a DynamoDB call's is what is left of its
            # request's deadline, new every time: kept, they grew with the container's requests.
            if len(self._timeouts) < KEPT_TIMEOUTS:
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
