"""The request path: match, then per-route steps assembled once, then respond and record.

Each step is a middleware `(next: Handler) -> Handler` around an `Exchange`, in the
order a request meets them:

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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tollway.config.compile import CompiledConfig, CompiledRoute
from tollway.core.messages import Request, Response, StreamCut
from tollway.core.principal import ANONYMOUS, Principal
from tollway.core.problems import problem_response
from tollway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
)
from tollway.http.routing import Router
from tollway.quota.metering import Reading, SseUsage

if TYPE_CHECKING:
    from tollway.upstream.request import BackendRequest


@dataclass(slots=True)
class BackendOutcome:
    name: str
    status: int | None  # None: no HTTP answer (timeout, refused, breaker open, skipped)
    latency_ms: float
    # A gRPC backend's status by name ("OK", "NOT_FOUND"); `status` is the HTTP status it maps to.
    grpc_status: str | None = None


@dataclass(slots=True)
class Exchange:
    request: Request
    route: CompiledRoute
    params: dict[str, str]
    started: float  # time.monotonic() when the request arrived
    principal: Principal = ANONYMOUS
    admitted: bool = False
    cost_units: int = 0  # what is billed: the route's cost, or a metered answer's actual cost
    reserved_units: int = 0  # what admission spent on the counter
    spent_on: Any = None  # the quota.store.Budget admission counted on; None: not counted
    spend: Any = None  # a metered request's admission and the counters it saw (RateLimit restated)
    usage: dict[str, int | float] | None = None  # a metered answer's raw usage fields
    usage_status: str | None = None  # a metered answer: "read", "missing" or "malformed"
    # Added to the final response whether it succeeds or fails (RateLimit fields).
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    backends: list[BackendOutcome] = field(default_factory=list)
    # Backend requests rendered before admission (`prepare`), by backend name.
    prepared: dict[str, BackendRequest] = field(default_factory=dict)
    called: bool = False  # a request was handed to a backend's connection (it may have it)

    @property
    def deadline(self) -> float:
        return self.started + self.route.timeout_s

    def call_started(self) -> None:
        self.called = True


Handler = Callable[[Exchange], Awaitable[Response]]
Middleware = Callable[[Handler], Handler]


class Authenticator(Protocol):
    async def authenticate(
        self, request: Request, route: CompiledRoute, deadline: float | None = None
    ) -> Principal: ...


class Admission(Protocol):
    """Spends the principal's plan for this request or raises TooManyRequests."""

    async def admit(self, exchange: Exchange) -> None: ...

    def policy(self, principal: Principal) -> list[tuple[str, str]]:
        """The plan's RateLimit policy fields, for answers that were not admitted or refused here."""
        ...

    def settle(self, exchange: Exchange) -> None:
        """After a metered answer: correct the reservation to `cost_units` (off the caller's path)."""
        ...


class Upstream(Protocol):
    def prepare(self, exchange: Exchange) -> None:
        """Before admission: raise what `call` would raise before calling any backend."""
        ...

    async def call(self, exchange: Exchange) -> Response: ...


class UsageRecorder(Protocol):
    """Buffers a finished exchange's usage event; never blocks on AWS."""

    def record(self, exchange: Exchange, response: Response, latency_ms: float) -> None: ...


class AccessLog(Protocol):
    def __call__(
        self,
        request: Request,
        response: Response,
        route_id: str | None,
        latency_ms: float,
        consumer: str | None,
    ) -> None: ...


# ---- steps --------------------------------------------------------------------------


def limit_body(next_: Handler) -> Handler:
    async def step(ex: Exchange) -> Response:
        if ex.request.oversize or len(ex.request.body) > ex.route.max_body_bytes:
            raise PayloadTooLarge(f"request body exceeds {ex.route.max_body_bytes} bytes")
        if ex.request.truncated:
            raise BadRequest("the request body ended before its declared end")
        if ex.request.late:
            raise RequestTimeout("the request body did not arrive within the route's deadline")
        return await next_(ex)

    return step


def authenticate(authenticator: Authenticator) -> Middleware:
    def wrap(next_: Handler) -> Handler:
        async def step(ex: Exchange) -> Response:
            ex.principal = await authenticator.authenticate(ex.request, ex.route, ex.deadline)
            return await next_(ex)

        return step

    return wrap


def authorize(next_: Handler) -> Handler:
    async def step(ex: Exchange) -> Response:
        if ex.principal.credential not in ex.route.auth:
            raise Unauthorized("this route does not accept that kind of credential")
        missing = ex.route.scopes - ex.principal.scopes
        if missing:
            needed = " ".join(sorted(missing))
            challenge = f'Bearer realm="tollway", error="insufficient_scope", scope="{needed}"'
            raise Forbidden(f"missing scope: {needed}", headers={"www-authenticate": challenge})
        return await next_(ex)

    return step


def admit(admission: Admission) -> Middleware:
    def wrap(next_: Handler) -> Handler:
        async def step(ex: Exchange) -> Response:
            await admission.admit(ex)
            return await next_(ex)

        return step

    return wrap


def check_ip(next_: Handler) -> Handler:
    async def step(ex: Exchange) -> Response:
        ex.route.ip.check(ex.request.client_ip)
        return await next_(ex)

    return step


def validate(next_: Handler) -> Handler:
    async def step(ex: Exchange) -> Response:
        # What the backend receives is the query as validated, never the caller's spelling.
        ex.request.query_string = ex.route.validator.check(ex.request.body, ex.request.query_string)
        return await next_(ex)

    return step


def prepare(upstream: Upstream) -> Middleware:
    def wrap(next_: Handler) -> Handler:
        async def step(ex: Exchange) -> Response:
            upstream.prepare(ex)
            return await next_(ex)

        return step

    return wrap


def route_steps(
    route: CompiledRoute, authenticator: Authenticator, admission: Admission | None, upstream: Upstream
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


def build_chain(route: CompiledRoute, upstream: Upstream, steps: Sequence[Middleware]) -> Handler:
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
        authenticator: Authenticator,
        upstream: Upstream,
        admission: Admission | None = None,
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

    def _state_plan(self, ex: Exchange, response: Response) -> None:
        """Every authenticated answer carries the plan's RateLimit policy, also one refused
        before the quota step counted anything (a missing scope, an invalid body)."""
        if (
            self.admission is not None
            and ex.principal.credential != "anonymous"
            and response.header("ratelimit-policy") is None
        ):
            response.headers.extend(self.admission.policy(ex.principal))

    def _meter(self, ex: Exchange, response: Response) -> None:
        """A metered route's cost is what its answer says (tollway.quota.metering)."""
        assert ex.route.metering is not None
        reading = ex.route.metering.read(response.body, response.header("content-type"))
        self._metered(ex, reading, failed=response.status >= 400, cut=False)

    def _metered(self, ex: Exchange, reading: Reading, *, failed: bool, cut: bool) -> None:
        assert ex.route.metering is not None
        ex.cost_units = ex.route.metering.charge(reading, ex.reserved_units, failed=failed, cut=cut)
        ex.usage, ex.usage_status = reading.fields, reading.status
        if reading.status == "malformed":
            from tollway.observability import logger

            logger.warning("malformed usage in answer", extra={"route_id": ex.route.id})
        if self.admission is not None:
            self.admission.settle(ex)

    def _refund(self, ex: Exchange) -> None:
        """An admitted request the gateway refused before calling any backend: nothing is
        charged, and what admission spent goes back to the counter."""
        ex.cost_units = 0
        if self.admission is not None:
            self.admission.settle(ex)
        ex.admitted = False

    def time_limit(self, method: str, path: str) -> float:
        """Seconds the request's route has from its arrival, its body's included (the
        gateway's default for a path no route serves)."""
        try:
            return self.router.match(method, path).target[0].timeout_s
        except GatewayError:
            return self.config.defaults.timeout_ms / 1000

    async def handle(self, request: Request, path: str, started: float | None = None) -> Response:
        """Answer one request. `path`: the caller's, as `http.routing.canonical_path` spells it;
        `started`: time.monotonic() when it arrived (its route's deadline runs from then)."""
        started = time.monotonic() if started is None else started
        ex: Exchange | None = None
        origin = request.headers.get("origin")
        try:
            preflight = origin is not None and self._preflight(request, path, origin)
            if preflight:
                response = preflight
            else:
                match = self.router.match(request.method, path)
                route, handler = match.target
                ex = Exchange(request, route, match.params, started)
                response = await handler(ex)
        except GatewayError as error:
            response = problem_response(error, request.request_id)
            if ex is not None and ex.admitted and not ex.called:
                self._refund(ex)
        except Exception:
            from tollway.observability import logger

            logger.exception("unhandled error", extra={"route_id": ex.route.id if ex else None})
            response = problem_response(GatewayError(), request.request_id)
            if ex is not None and ex.admitted and not ex.called:
                self._refund(ex)
        if ex is not None and ex.admitted and ex.route.metering is not None and response.stream is None:
            self._meter(ex, response)  # before the headers: RateLimit then shows the actual cost
        if ex is not None:
            response.headers.extend(ex.extra_headers)
            self._state_plan(ex, response)
        if ex is not None and origin is not None and ex.route.cors is not None:
            ex.route.cors.decorate(origin, response)
        response.headers.append(("x-request-id", request.request_id))
        if response.stream is not None and ex is not None:
            # Metered, logged and recorded once the stream has passed (see _relay).
            response.stream = self._relay(ex, response, response.stream, started)
            return response
        self._finish(ex, request, response, started)
        return response

    async def _relay(
        self, ex: Exchange, response: Response, stream: AsyncIterator[bytes], started: float
    ) -> AsyncIterator[bytes]:
        """The backend's event stream on its way to the caller; its usage read as it passes."""
        metering = ex.route.metering if ex.admitted else None
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
                self._metered(ex, usage.reading(), failed=False, cut=not ended)
            self._finish(ex, ex.request, response, started)

    def _finish(self, ex: Exchange | None, request: Request, response: Response, started: float) -> None:
        """Once the whole answer has passed: the access log line and the usage event."""
        latency_ms = (time.monotonic() - started) * 1000
        if self.access_log is not None:
            self.access_log(
                request,
                response,
                ex.route.id if ex else None,
                latency_ms,
                ex.principal.consumer_id if ex and ex.principal is not ANONYMOUS else None,
            )
        if ex is not None and self.usage is not None:
            self.usage.record(ex, response, latency_ms)
