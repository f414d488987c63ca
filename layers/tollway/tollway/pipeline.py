"""The request path: match, then per-route steps assembled once, then respond and record.

Each step is a middleware `(next: Handler) -> Handler` around the request's `Context`
(tollway.core), in the order a request meets them:

    ip -> body limit -> authenticate -> authorize -> validate -> prepare -> admit (quota)
       -> upstream (fan out, compose)

Admission is the last of the gateway's own checks: everything the gateway refuses by
itself is refused before it spends anything (`prepare` makes the upstream's own refusals:
a caller's unusable path value, the deadline already passed, every breaker open). What the
gateway still refuses after admission without calling a backend is refunded
(`Gateway._refund`). docs/metering.md, "What is charged", lists every refusal.

`Gateway.handle` is the one place errors become responses (problem+json) and where
every response gets its request id, RateLimit fields, access-log line and usage event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from tollway.core import steps as shapes
from tollway.core.context import Context
from tollway.core.messages import Request, Response, StreamCut
from tollway.core.principal import ANONYMOUS
from tollway.core.problems import problem_response
from tollway.core.steps import AccessLog, Admission, Authenticator, Upstream, UsageRecorder
from tollway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
)
from tollway.policy.metering import Reading, SseUsage
from tollway.routing import Router
from tollway.table.routes import CompiledConfig, CompiledRoute

Handler = shapes.Handler[CompiledRoute]
Middleware = shapes.Middleware[CompiledRoute]


# ---- steps --------------------------------------------------------------------------


def limit_body(next_: Handler) -> Handler:
    async def step(ctx: Context[CompiledRoute]) -> Response:
        if ctx.request.oversize or len(ctx.request.body) > ctx.route.max_body_bytes:
            raise PayloadTooLarge(f"request body exceeds {ctx.route.max_body_bytes} bytes")
        if ctx.request.truncated:
            raise BadRequest("the request body ended before its declared end")
        if ctx.request.late:
            raise RequestTimeout("the request body did not arrive within the route's deadline")
        return await next_(ctx)

    return step


def authenticate(authenticator: Authenticator[CompiledRoute]) -> Middleware:
    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            ctx.principal = await authenticator.authenticate(ctx.request, ctx.route, ctx.deadline)
            return await next_(ctx)

        return step

    return wrap


def authorize(next_: Handler) -> Handler:
    async def step(ctx: Context[CompiledRoute]) -> Response:
        if ctx.principal.credential not in ctx.route.auth:
            raise Unauthorized("this route does not accept that kind of credential")
        missing = ctx.route.scopes - ctx.principal.scopes
        if missing:
            needed = " ".join(sorted(missing))
            challenge = f'Bearer realm="tollway", error="insufficient_scope", scope="{needed}"'
            raise Forbidden(f"missing scope: {needed}", headers={"www-authenticate": challenge})
        return await next_(ctx)

    return step


def admit(admission: Admission[CompiledRoute]) -> Middleware:
    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            await admission.admit(ctx)
            return await next_(ctx)

        return step

    return wrap


def check_ip(next_: Handler) -> Handler:
    async def step(ctx: Context[CompiledRoute]) -> Response:
        ctx.route.ip.check(ctx.request.client_ip)
        return await next_(ctx)

    return step


def validate(next_: Handler) -> Handler:
    async def step(ctx: Context[CompiledRoute]) -> Response:
        # What the backend receives is the query as validated, never the caller's spelling.
        ctx.request.query_string = ctx.route.validator.check(ctx.request.body, ctx.request.query_string)
        return await next_(ctx)

    return step


def prepare(upstream: Upstream[CompiledRoute]) -> Middleware:
    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            upstream.prepare(ctx)
            return await next_(ctx)

        return step

    return wrap


def route_steps(
    route: CompiledRoute,
    authenticator: Authenticator[CompiledRoute],
    admission: Admission[CompiledRoute] | None,
    upstream: Upstream[CompiledRoute],
) -> list[Middleware]:
    """The recipe for one route, in the order a request meets the steps. Admission comes last:
    nothing the gateway refuses by itself spends the consumer's plan."""
    steps: list[Middleware] = [check_ip] if route.ip is not None else []
    steps.append(limit_body)
    if not route.public:
        steps += [authenticate(authenticator), authorize]
    if route.validator is not None:
        steps.append(validate)
    if not route.public and admission is not None:
        steps += [prepare(upstream), admit(admission)]
    return steps


def build_chain(
    route: CompiledRoute, upstream: Upstream[CompiledRoute], steps: Sequence[Middleware]
) -> Handler:
    """Wrap the upstream call in `steps`, the first step outermost (Starlette's reversed loop)."""
    handler: Handler = upstream.call
    for step in reversed(steps):
        handler = step(handler)
    return handler


# ---- the gateway --------------------------------------------------------------------


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

    def _preflight(self, request: Request, path: str, origin: str) -> Response | None:
        """A CORS preflight is answered here: no auth, no quota, no backend."""
        wanted = request.headers.get("access-control-request-method")
        if request.method != "OPTIONS" or wanted is None:
            return None
        try:
            route = self.router.match(wanted, path).target[0]
        except MethodNotAllowed:
            return Response(204, [("vary", "Origin")])
        if route.cors is None:
            return None
        return route.cors.preflight(origin, wanted, route.methods)

    def _state_plan(self, ctx: Context[CompiledRoute], response: Response) -> None:
        """Every authenticated answer carries the plan's RateLimit policy, also one refused
        before the quota step counted anything (a missing scope, an invalid body)."""
        if (
            self.admission is not None
            and ctx.principal.credential != "anonymous"
            and response.header("ratelimit-policy") is None
        ):
            response.headers.extend(self.admission.policy(ctx.principal))

    def _meter(self, ctx: Context[CompiledRoute], response: Response) -> None:
        """A metered route's cost is what its answer says (tollway.policy.metering)."""
        assert ctx.route.metering is not None
        reading = ctx.route.metering.read(response.body, response.header("content-type"))
        self._metered(ctx, reading, failed=response.status >= 400, cut=False)

    def _metered(self, ctx: Context[CompiledRoute], reading: Reading, *, failed: bool, cut: bool) -> None:
        assert ctx.route.metering is not None
        ctx.cost_units = ctx.route.metering.charge(reading, ctx.reserved_units, failed=failed, cut=cut)
        ctx.usage, ctx.usage_status = reading.fields, reading.status
        if reading.status == "malformed":
            from tollway.observability import logger

            logger.warning("malformed usage in answer", extra={"route_id": ctx.route.id})
        if self.admission is not None:
            self.admission.settle(ctx)

    def _refund(self, ctx: Context[CompiledRoute]) -> None:
        """An admitted request the gateway refused before calling any backend: nothing is
        charged, and what admission spent goes back to the counter."""
        ctx.cost_units = 0
        if self.admission is not None:
            self.admission.settle(ctx)
        ctx.admitted = False

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
        origin = request.headers.get("origin")
        try:
            preflight = origin is not None and self._preflight(request, path, origin)
            if preflight:
                response = preflight
            else:
                match = self.router.match(request.method, path)
                route, handler = match.target
                ctx = Context(request, route, match.params, started)
                response = await handler(ctx)
        except GatewayError as error:
            response = problem_response(error, request.request_id)
            if ctx is not None and ctx.admitted and not ctx.called:
                self._refund(ctx)
        except Exception:
            from tollway.observability import logger

            logger.exception("unhandled error", extra={"route_id": ctx.route.id if ctx else None})
            response = problem_response(GatewayError(), request.request_id)
            if ctx is not None and ctx.admitted and not ctx.called:
                self._refund(ctx)
        if ctx is not None and ctx.admitted and ctx.route.metering is not None and response.stream is None:
            self._meter(ctx, response)  # before the headers: RateLimit then shows the actual cost
        if ctx is not None:
            response.headers.extend(ctx.extra_headers)
            self._state_plan(ctx, response)
        if ctx is not None and origin is not None and ctx.route.cors is not None:
            ctx.route.cors.decorate(origin, response)
        response.headers.append(("x-request-id", request.request_id))
        if response.stream is not None and ctx is not None:
            # Metered, logged and recorded once the stream has passed (see _relay).
            response.stream = self._relay(ctx, response, response.stream, started)
            return response
        self._finish(ctx, request, response, started)
        return response

    async def _relay(
        self, ctx: Context[CompiledRoute], response: Response, stream: AsyncIterator[bytes], started: float
    ) -> AsyncIterator[bytes]:
        """The backend's event stream on its way to the caller; its usage read as it passes."""
        metering = ctx.route.metering if ctx.admitted else None
        usage = SseUsage(metering) if metering is not None else None
        ended = False
        try:
            async for chunk in stream:
                response.streamed += len(chunk)
                if usage is not None:
                    usage.feed(chunk)
                yield chunk
            ended = True
        except StreamCut:
            pass  # its end, as far as the caller is concerned: the head is long sent
        finally:
            if usage is not None:
                # Not read to its end (cut, or abandoned): its usage may not have arrived.
                self._metered(ctx, usage.reading(), failed=False, cut=not ended)
            self._finish(ctx, ctx.request, response, started)

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
