"""The shared HTTP client: one per container, its pool reused across warm invocations.

Two faces on one connection pool:
- `make_client`: an `httpx.AsyncClient` for the gateway's own requests (JWKS); tests swap
  its transport (e.g. `httpx.MockTransport`).
- `exchanger_for(client)`: what backend calls and DynamoDB calls go through
  (`exchange.py`), chosen once per container. On the production transport
  (httpx-aiohttp's) it is the transport's own `aiohttp.ClientSession`, used directly: no
  httpx request or response objects per call, no cookie jar, no redirects. On any other
  transport it wraps that transport, so tests drive the same code through httpx.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from tollway.transport.exchange import AiohttpExchanger, Exchanger, HttpxExchanger, SharedSession

LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)


def make_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    if transport is None:
        session = SharedSession(LIMITS, httpx.create_ssl_context(trust_env=False))
        transport = AiohttpTransport(
            verify=session.ssl_context, trust_env=False, limits=LIMITS, client=session
        )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(30.0),
    )


def transport_of(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    """The transport a client was built with (httpx keeps it as `_transport`, no mounts here)."""
    return client._transport


def exchanger_for(client: httpx.AsyncClient) -> Exchanger:
    """Direct aiohttp calls on the client's own session when its transport is httpx-aiohttp's;
    otherwise its transport, wrapped."""
    transport = transport_of(client)
    if type(transport) is not AiohttpTransport:
        return HttpxExchanger(transport)
    source = transport.client
    if source is None:  # a transport built without a session: give it the shared one
        source = transport.client = SharedSession(transport.limits, transport.ssl_context)
    if isinstance(source, SharedSession):
        shared = source

        def session() -> aiohttp.ClientSession:
            # Hand the session to the transport too, which closes it with the client.
            made = transport.client = shared()
            return made

        return AiohttpExchanger(session)
    # The transport swaps its factory for the session on first use; a session that keeps
    # cookies (not ours) would share them between callers: leave its calls to httpx.
    if isinstance(source, aiohttp.ClientSession) and isinstance(source.cookie_jar, aiohttp.DummyCookieJar):
        return AiohttpExchanger(lambda: source)
    return HttpxExchanger(transport)
