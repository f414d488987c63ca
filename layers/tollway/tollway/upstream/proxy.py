"""`compose: proxy`: one backend, status, headers (minus hop-by-hop) and body passed through."""

from __future__ import annotations

import asyncio
import time

import httpx

from tollway.errors import BadGateway, GatewayTimeout
from tollway.http.headers import NOT_TO_CALLER, connection_tokens
from tollway.http.messages import Response
from tollway.pipeline import BackendOutcome, Exchange
from tollway.upstream.request import backend_headers, backend_url


async def proxy(client: httpx.AsyncClient, ex: Exchange) -> Response:
    backend = ex.route.backends[0]
    if backend.base_url is None:
        raise BadGateway(f"service {backend.service} has no URL in this stage")
    url = backend_url(backend, ex, {}, forward_query=True)
    headers = backend_headers(backend, ex, {})
    method = backend.method or ex.request.method
    budget = min(backend.timeout_s, ex.deadline - time.monotonic())
    started = time.monotonic()
    status: int | None = None
    try:
        async with asyncio.timeout(budget):
            request = client.build_request(method, url, headers=headers, content=ex.request.body or None)
            upstream = await client.send(request, stream=True)
            try:
                status = upstream.status_code
                body = await _read_capped(upstream, ex.route.max_response_bytes)
            finally:
                await upstream.aclose()
    except TimeoutError as exc:
        raise GatewayTimeout(f"backend {backend.name} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise BadGateway(f"backend {backend.name} failed: {type(exc).__name__}") from exc
    finally:
        ex.backends.append(BackendOutcome(backend.name, status, (time.monotonic() - started) * 1000))
    drop = NOT_TO_CALLER | connection_tokens(upstream.headers.get("connection"))
    out = [(k.lower(), v) for k, v in upstream.headers.multi_items() if k.lower() not in drop]
    return Response(upstream.status_code, out, body)


class ResponseTooLarge(BadGateway):
    pass


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"backend response exceeds {limit} bytes")
    chunks = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(f"backend response exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
