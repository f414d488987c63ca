"""Exchangers for tests: the container's own, counting what it sends; and httpx, for the bench.

`Counting` wraps the production `AiohttpExchanger` (real connections, to real loopback
servers) and notes each request: what `build_app(exchanger=...)` and the callers of the
request path send, never stubbed. `HttpxExchanger` speaks through an httpx transport: the
bench's default-httpx floor (row S1), not the router's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
from tollway.transport.exchange import (
    AiohttpExchanger,
    ConnectTimeout,
    ExchangeError,
    Exchanger,
    RawResponse,
    ReadTimeout,
    Refused,
    ResponseHeaders,
)


class Counting:
    """An exchanger (by default the production one) noting every request it sends."""

    def __init__(self, inner: Exchanger | None = None) -> None:
        self.inner = inner or AiohttpExchanger()
        self.requests: list[tuple[str, str]] = []  # (method, url)
        self.targets: list[str] = []  # the x-amz-target of each AWS call ("DynamoDB_20120810.GetItem")

    @property
    def calls(self) -> list[str]:
        """The AWS operations sent ("UpdateItem", "GetItem", ...), one per HTTP request."""
        return [target.rpartition(".")[2] for target in self.targets]

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
        self.requests.append((method, url))
        target = next((v for k, v in headers if k.lower() == "x-amz-target"), None)
        if target is not None:
            self.targets.append(target)
        return await self.inner.request(method, url, headers, body, decode=decode, timeout=timeout)

    async def close(self) -> None:
        await self.inner.close()


def _httpx_error(exc: Exception) -> ExchangeError:
    refused = (httpx.ConnectError, ConnectionRefusedError)
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
        try:
            async for chunk in self._response.aiter_bytes() if self._decode else self._response.aiter_raw():
                yield chunk
        except (httpx.HTTPError, OSError) as exc:
            raise _httpx_error(exc) from exc

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def close(self) -> None:
        await self._response.aclose()


class HttpxExchanger:
    """Requests through an httpx transport (default: httpx's own)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def request(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        *,
        decode: bool = False,
        timeout: float | None = None,
    ) -> HttpxResponse:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        phases = ("connect", "read", "write", "pool")
        extensions = {} if timeout is None else {"timeout": dict.fromkeys(phases, timeout)}
        request = httpx.Request(method, url, headers=raw, content=body, extensions=extensions)
        try:
            response = await self.transport.handle_async_request(request)
        except (httpx.HTTPError, OSError) as exc:
            raise _httpx_error(exc) from exc
        return HttpxResponse(response, decode)

    async def close(self) -> None:
        await self.transport.aclose()
