"""The shared HTTP client: one per container, its pool reused across warm invocations.

httpx keeps the API (tests swap the transport, e.g. `httpx.MockTransport`); the aiohttp
transport underneath is the fast one on this machine kind (see NOTES.md).
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
