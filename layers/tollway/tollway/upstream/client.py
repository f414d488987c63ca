"""The shared HTTP client: one per container, its pool reused across warm invocations.

httpx keeps the API (tests swap the transport, e.g. `httpx.MockTransport`); the aiohttp
transport underneath is the fast one on this machine kind (see NOTES.md).

Backend calls go to the client's transport directly (`transport_of`), not through
`AsyncClient.send`: the client layer would keep a cookie jar shared by every caller (one
caller's `Set-Cookie` sent on with the next caller's request), follow its redirect and
auth logic, and cost about half of the proxy path's CPU. The client itself stays for the
gateway's own requests (JWKS).
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)


def make_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport or AiohttpTransport(limits=LIMITS, trust_env=False),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(30.0),
    )


def transport_of(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    """The transport a client was built with (httpx keeps it as `_transport`, no mounts here)."""
    return client._transport
