"""One request through the gateway: match -> chain -> problem -> finish.

    match    the route of the method and path (404, 405 with Allow); a CORS preflight is
             answered here by the route its method names, without auth, quota or backend
    chain    the route's steps around its upstream call, built once (tollway.pipeline)
    problem  the one place a raised GatewayError becomes `application/problem+json`
             (anything else: a 500 that says nothing more, and a log line)
    finish   the request id on the answer; once the whole answer has passed (an event
             stream's at its end), the access-log line and the usage event
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from tollway.core.context import Context
from tollway.core.messages import Request, Response, StreamCut
from tollway.core.principal import ANONYMOUS
from tollway.core.problems import problem_response
from tollway.core.steps import AccessLog, Admission, Authenticator, Upstream, UsageRecorder
from tollway.errors import GatewayError, MethodNotAllowed
from tollway.pipeline import Handler, build_chain, route_steps
from tollway.routing import Router
from tollway.table.routes import CompiledConfig, CompiledRoute


class Gateway:
    def __init__(
        self,
        config: CompiledConfig,
        *,
        authenticator: Authenticator[CompiledRoute],
        upstream: Upstream[CompiledRoute],
        admission: Admission[CompiledRoute] | None = None,
        usage: UsageRecorder | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.config = config
        self.upstream = upstream
        self.admission = admission
        self.usage = usage
        self.access_log = access_log
        self.router: Router[tuple[CompiledRoute, Handler]] = Router()
        for route in config.routes:
            steps = route_steps(route, authenticator, admission, upstream)
            self.router.add(route.path, route.methods, (route, build_chain(route, upstream, steps)))

    def time_limit(self, method: str, path: str) -> float:
        """Seconds the request's route has from its arrival, its body's included (the
        gateway's default for a path no route serves)."""
        try:
            return self.router.match(method, path).target[0].timeout_s
        except GatewayError:
            return self.config.defaults.timeout_ms / 1000

    async def handle(self, request: Request, path: str, started: float | None = None) -> Response:
        """Answer one request. `path`: the caller's, as `routing.canonical_path` spells it;
        `started`: time.monotonic() when it arrived (its route's deadline runs from then)."""
        started = time.monotonic() if started is None else started
        ctx: Context[CompiledRoute] | None = None
        try:
            response = self._preflight(request, path)
            if response is None:
                match = self.router.match(request.method, path)
                route, handler = match.target
                ctx = Context(request, route, match.params, started)
                response = await handler(ctx)
        except GatewayError as error:
            response = problem_response(error, request.request_id)
        except Exception:
            from tollway.observability import logger

            logger.exception("unhandled error", extra={"route_id": ctx.route.id if ctx else None})
            response = problem_response(GatewayError(), request.request_id)
        response.headers.append(("x-request-id", request.request_id))
        if response.stream is None:
            self._finish(ctx, request, response, started)
        else:
            response.stream = self._passing(ctx, request, response, response.stream, started)
        return response

    def _preflight(self, request: Request, path: str) -> Response | None:
        """A CORS preflight is answered here: no auth, no quota, no backend."""
        origin = request.headers.get("origin")
        wanted = request.headers.get("access-control-request-method")
        if origin is None or request.method != "OPTIONS" or wanted is None:
            return None
        try:
            route = self.router.match(wanted, path).target[0]
        except MethodNotAllowed:
            return Response(204, [("vary", "Origin")])
        if route.cors is None:
            return None
        return route.cors.preflight(origin, wanted, route.methods)

    async def _passing(
        self,
        ctx: Context[CompiledRoute] | None,
        request: Request,
        response: Response,
        stream: AsyncIterator[bytes],
        started: float,
    ) -> AsyncIterator[bytes]:
        """The event stream on its way to the caller; finished once it has passed."""
        ended = False
        try:
            async for chunk in stream:
                response.streamed += len(chunk)
                yield chunk
            ended = True
        except StreamCut:
            ended = True  # its end, as far as the caller is concerned: the head is long sent
        finally:
            if not ended:  # the caller left: the steps' after-work (the meter's) runs first
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
            self._finish(ctx, request, response, started)

    def _finish(
        self, ctx: Context[CompiledRoute] | None, request: Request, response: Response, started: float
    ) -> None:
        """Once the whole answer has passed: the access log line and the usage event."""
        latency_ms = (time.monotonic() - started) * 1000
        if self.access_log is not None:
            self.access_log(
                request,
                response,
                ctx.route.id if ctx else None,
                latency_ms,
                ctx.principal.consumer_id if ctx and ctx.principal is not ANONYMOUS else None,
            )
        if ctx is not None and self.usage is not None:
            self.usage.record(ctx, response, latency_ms)
