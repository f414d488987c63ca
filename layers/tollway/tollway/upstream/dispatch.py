"""The pipeline's innermost step: call the route's backends and compose one response.

One `HttpUpstream` per container holds what outlives a request: the shared HTTP client,
the circuit breakers (one per instance URL), the round-robin rotations (one per service),
the discovered services' instances and the response caches.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import httpx

from tollway.http.messages import Response
from tollway.pipeline import Exchange
from tollway.upstream.breaker import Breakers
from tollway.upstream.cache import CACHEABLE, Caches, fill_for, keyed_values, matches, storable_ttl, variant
from tollway.upstream.call import BackendCaller, Directory
from tollway.upstream.composite import Composite
from tollway.upstream.proxy import proxy


class HttpUpstream:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        directory: Directory | None = None,
    ) -> None:
        """`clock` drives breaker cool-downs and cache expiry; `rng` the retry jitter and
        where each rotation starts; `directory` resolves `ssm:` and `cloudmap:` services."""
        self.client = client
        self.breakers = Breakers(clock)
        self.caches = Caches(clock)
        self.caller = BackendCaller(client, self.breakers, rng, directory)
        self.composite = Composite(self.caller, self.caches)

    async def call(self, exchange: Exchange) -> Response:
        route = exchange.route
        if route.cache is None or exchange.request.method not in CACHEABLE:
            return (await self._respond(exchange))[0]
        cache = self.caches.for_(route.id, route.cache)
        request = exchange.request
        fill = fill_for(request.method, route.cache)
        assert fill is not None
        # Everything the backend requests may carry (upstream/request.py): nothing else.
        principal = exchange.principal
        who = None
        if not fill.shared:
            who = (principal.consumer_id, tuple(sorted(principal.scopes)) if route.forward_scopes else ())
        key = (
            request.method,
            tuple(sorted(exchange.params.items())),
            request.query_string,
            request.host,
            who,
            keyed_values(fill, request.headers),
        )
        hit = cache.get(key)
        if hit is not None and matches(hit[3], request.headers):
            status, headers, body, _ = hit
            return Response(status, [*headers, ("tollway-cache", "hit")], body)
        response, cache_controls = await self._respond(exchange)
        # A partial answer, or one that sets a cookie, is for this caller and this moment only.
        if (
            response.status == 200
            and response.stream is None
            and response.header("tollway-partial") is None
            and response.header("set-cookie") is None
        ):
            ttl = storable_ttl(route.cache, cache_controls)
            varies = variant(response.headers, request.headers)
            if varies is not None:
                cache.put(key, (response.status, tuple(response.headers), response.body, varies), ttl)
        response.headers.append(("tollway-cache", "miss"))
        return response

    async def _respond(self, exchange: Exchange) -> tuple[Response, list[str | None]]:
        if exchange.route.compose == "proxy":
            response, answer = await proxy(self.caller, exchange)
            return response, [answer.headers.get("cache-control")]
        return await self.composite.respond(exchange)
