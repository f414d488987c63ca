"""The pipeline's innermost step: call the route's backends and compose one response.

One `HttpUpstream` per container holds what outlives a request: the container's exchanger,
the circuit breakers (one per instance URL), the round-robin rotations (one per service),
the discovered services' instances and the response caches; and, for a route table with
gRPC backends, the gRPC side (`tollway.upstream.grpc`: channels and message classes),
made at init by `enable_grpc` or on first use, never imported otherwise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tollway.core.context import Context
from tollway.core.messages import Response
from tollway.transport.exchange import Exchanger
from tollway.upstream.breaker import Breakers
from tollway.upstream.cache import (
    CACHEABLE,
    Caches,
    end_to_end,
    fill_for,
    keyed_values,
    matches,
    storable_ttl,
    variant,
)
from tollway.upstream.call import BackendCaller, Directory
from tollway.upstream.composite import Composite
from tollway.upstream.prepare import prepare
from tollway.upstream.proxy import proxy

if TYPE_CHECKING:
    from tollway.table.routes import CompiledConfig, CompiledRoute
    from tollway.upstream.grpc import GrpcUpstream


class HttpUpstream:
    def __init__(
        self,
        exchanger: Exchanger,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        directory: Directory | None = None,
    ) -> None:
        """`clock` drives breaker cool-downs and cache expiry; `rng` the retry jitter and
        where each rotation starts; `directory` resolves `ssm:` and `cloudmap:` services."""
        self.breakers = Breakers(clock)
        self.caches = Caches(clock)
        self.caller = BackendCaller(exchanger, self.breakers, rng, directory)
        self.composite = Composite(self.caller, self.caches, grpc=self.grpc)
        self._grpc: GrpcUpstream | None = None

    def grpc(self) -> GrpcUpstream:
        """The gRPC side, made on first use (tollway/upstream/grpc imports grpc and protobuf)."""
        if self._grpc is None:
            from tollway.upstream.grpc import GrpcUpstream

            self._grpc = GrpcUpstream(self.caller, self.caches)
        return self._grpc

    async def close_grpc(self) -> None:
        """Close the gRPC channels of the running loop (uvicorn's shutdown), if any were made."""
        if self._grpc is not None:
            await self._grpc.close()

    def enable_grpc(self, config: CompiledConfig) -> None:
        """At init, for a table with gRPC backends: import and build their messages now."""
        if any(b.grpc is not None for route in config.routes for b in route.backends):
            self.grpc().prepare(config)

    def prepare(self, ctx: Context[CompiledRoute]) -> None:
        """Before admission: what the call would refuse without calling a backend (prepare.py),
        and a gRPC message the caller's input does not fit."""
        prepare(self.caller, ctx)
        if any(b.grpc is not None for b in ctx.route.backends):
            self.grpc().check(ctx)

    async def call(self, ctx: Context[CompiledRoute]) -> Response:
        route = ctx.route
        if route.cache is None or ctx.request.method not in CACHEABLE:
            return (await self._respond(ctx))[0]
        cache = self.caches.for_(route.id, route.cache)
        request = ctx.request
        fill = fill_for(request.method, route.cache)
        assert fill is not None
        # Everything the backend requests may carry (upstream/request.py): nothing else.
        principal = ctx.principal
        who = None
        if not fill.shared:
            who = (principal.consumer_id, tuple(sorted(principal.scopes)) if route.forward_scopes else ())
        fields = end_to_end(request.headers)  # as the backend gets them
        key = (
            request.method,
            tuple(sorted(ctx.params.items())),
            request.query_string,
            request.host,
            who,
            keyed_values(fill, fields),
        )
        hit = cache.get(key)
        if hit is not None and matches(hit[3], fields):
            status, headers, body, _ = hit
            return Response(status, [*headers, ("tollway-cache", "hit")], body)
        response, cache_controls = await self._respond(ctx)
        # A partial answer, or one that sets a cookie, is for this caller and this moment only.
        if (
            response.status == 200
            and response.stream is None
            and response.header("tollway-partial") is None
            and response.header("set-cookie") is None
        ):
            ttl = storable_ttl(route.cache, cache_controls)
            varies = variant(response.headers, fields)
            if varies is not None:
                cache.put(key, (response.status, tuple(response.headers), response.body, varies), ttl)
        response.headers.append(("tollway-cache", "miss"))
        return response

    async def _respond(self, ctx: Context[CompiledRoute]) -> tuple[Response, list[str | None]]:
        if ctx.route.compose == "proxy":
            if ctx.route.backends[0].grpc is not None:
                return await self.grpc().proxy(ctx), []
            response, answer = await proxy(self.caller, ctx)
            return response, [answer.headers.get("cache-control")]
        return await self.composite.respond(ctx)
