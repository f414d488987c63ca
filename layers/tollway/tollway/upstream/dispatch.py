"""The pipeline's innermost step: call the route's backends and compose one response."""

from __future__ import annotations

import httpx

from tollway.http.messages import Response
from tollway.pipeline import Exchange
from tollway.upstream.proxy import proxy


class HttpUpstream:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, exchange: Exchange) -> Response:
        return await proxy(self.client, exchange)
