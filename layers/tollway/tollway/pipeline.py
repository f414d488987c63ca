"""The steps of a route, and its recipe: only the steps it needs, assembled once.

Each step is a middleware `(next: Handler) -> Handler` around the request's `Context`
(tollway.core), in the order a request meets them:

    cors -> ip -> body limit -> authenticate -> state the plan -> authorize -> validate
         -> prepare -> admit (quota) -> meter -> upstream (fan out, compose)

A step with work after the answer does it after `await next`, on the response or on the
error on its way out (tollway.core.steps): CORS fields on every answer of its route; the
plan's `RateLimit-Policy` on every authenticated answer; admission settles what the
request cost (a refund when the gateway refused it after admission without calling a
backend) and states what is left (`RateLimit`); the meter reads what a metered answer
cost, from its body or from its event stream as it passes.

Admission is the last of the gateway's own checks: everything the gateway refuses by
itself is refused before it spends anything (`prepare` makes the upstream's own refusals:
a caller's unusable path value, the deadline already passed, every breaker open).
docs/metering.md, "What is charged", lists every refusal. `tollway.gateway.Gateway` runs
the chain: match -> chain -> problem -> finish.
"""

from __future__ import annotations

from collections.abc import Sequence

from tollway.core import steps as shapes
from tollway.core.context import Context
from tollway.core.messages import Response
from tollway.core.steps import Admission, Authenticator, Upstream, after
from tollway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
)
from tollway.policy.cors import CorsPolicy
from tollway.policy.metering import CostSpec, Reading, SseUsage
from tollway.table.routes import CompiledRoute

Handler = shapes.Handler[CompiledRoute]
Middleware = shapes.Middleware[CompiledRoute]


def _problem(error: Exception, ctx: Context[CompiledRoute]) -> GatewayError:
    """`error` as the GatewayError the caller's answer is made from. Anything else (a bug) is
    logged here, where it is first caught, and becomes a bare 500 that the steps outside still
    finish like any refusal: CORS fields, the plan, what is left, a refund if nothing was called."""
    if isinstance(error, GatewayError):
        return error
    from tollway.observability import logger

    logger.exception("unhandled error", extra={"route_id": ctx.route.id})
    problem = GatewayError()
    problem.__cause__ = error
    return problem


def _state(answer: Response | BaseException, name: str, fields: list[tuple[str, str]]) -> None:
    """Put the gateway's own fields (named `name`, or none: nothing to state) on an answer, or
    on the error that becomes it, in place of any field of that name it has: a backend's
    `RateLimit` is not the gateway's word, also when the gateway has none (a plan without
    limits, a quota store failed open)."""
    if isinstance(answer, GatewayError):
        answer.headers.update(fields)
    elif isinstance(answer, Response):
        if any(k == name for k, _ in answer.headers):
            answer.headers[:] = [(k, v) for k, v in answer.headers if k != name]
        answer.headers += fields


# ---- the gateway's own checks ------------------------------------------------------------


def cors(policy: CorsPolicy) -> Middleware:
    """Every answer of the route, errors included, carries the CORS fields of an allowed
    `Origin` (preflights are answered before any route's chain: tollway.gateway)."""

    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            origin = ctx.request.headers.get("origin")
            try:
                response = await next_(ctx)
            except Exception as error:
                problem = _problem(error, ctx)
                problem.headers.update(policy.fields(origin))
                if problem is error:
                    raise
                raise problem from error
            # The route's policy is the only word: a proxied backend's own grant (one that
            # reflects any origin, with credentials, say) would stand beside or for the gateway's,
            # also on an answer to no Origin (a browser's or a CDN's cache may hand it on).
            response.headers[:] = [(k, v) for k, v in response.headers if not k.startswith("access-control-")]
            response.headers.extend(policy.fields(origin))
            return response

        return step

    return wrap


def check_ip(next_: Handler) -> Handler:
    async def step(ctx: Context[CompiledRoute]) -> Response:
        ctx.route.ip.check(ctx.request.client_ip)
        return await next_(ctx)

    return step


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


# ---- the plan: stated, spent, settled ----------------------------------------------------


def state_plan(admission: Admission[CompiledRoute]) -> Middleware:
    """Every authenticated answer states the caller's plan (`RateLimit-Policy`), also one
    refused before admission counted anything (a missing scope, an invalid body)."""

    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            try:
                response = await next_(ctx)
            except Exception as error:
                problem = _problem(error, ctx)
                _state(problem, "ratelimit-policy", admission.policy(ctx.principal))
                if problem is error:
                    raise
                raise problem from error
            _state(response, "ratelimit-policy", admission.policy(ctx.principal))
            return response

        return step

    return wrap


def admit(admission: Admission[CompiledRoute]) -> Middleware:
    """Spend the plan for the request; after the answer (a stream's: at its end) settle what
    it cost, and state what is left (`RateLimit`)."""

    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            spend = admission.spend(ctx)
            try:
                await spend.run()
                response = await next_(ctx)
            except Exception as error:
                if ctx.admitted and not ctx.called:
                    # Refused by the gateway itself after admission, before any backend had
                    # the request: nothing is charged, what admission spent goes back.
                    ctx.cost_units = 0
                    spend.settle()
                    ctx.admitted = False
                elif ctx.admitted:
                    spend.settle()  # to what the meter found the failed answer owes
                problem = _problem(error, ctx)
                _state(problem, "ratelimit", _remaining(spend))
                if problem is error:
                    raise
                raise problem from error
            after(response, lambda cut: spend.settle())
            _state(response, "ratelimit", _remaining(spend))  # a stream's: as reserved, its head goes first
            return response

        return step

    return wrap


def _remaining(spend: shapes.Spend) -> list[tuple[str, str]]:
    remaining = spend.remaining()
    return [("ratelimit", remaining)] if remaining is not None else []


def meter(spec: CostSpec) -> Middleware:
    """A metered route's cost is what its answer says (tollway.policy.metering): read from its
    body, or from its event stream as it passes; an error answer pays only the usage it
    carries, and a request refused before any backend had it is refunded by `admit`."""

    def wrap(next_: Handler) -> Handler:
        async def step(ctx: Context[CompiledRoute]) -> Response:
            try:
                response = await next_(ctx)
            except Exception:
                if ctx.called:
                    _charge(ctx, spec, spec.from_values({}), failed=True)
                raise
            if response.stream is None:
                reading = spec.read(response.body, response.header("content-type"))
                _charge(ctx, spec, reading, failed=response.status >= 400)
            else:
                usage = SseUsage(spec)
                # Not read to its end (cut, or abandoned): its usage may not have arrived.
                after(response, lambda cut: _charge(ctx, spec, usage.reading(), cut=cut), usage.feed)
            return response

        return step

    return wrap


def _charge(
    ctx: Context[CompiledRoute], spec: CostSpec, reading: Reading, *, failed: bool = False, cut: bool = False
) -> None:
    ctx.cost_units = spec.charge(reading, ctx.reserved_units, failed=failed, cut=cut)
    ctx.usage, ctx.usage_status = reading.fields, reading.status
    if reading.status == "malformed":
        from tollway.observability import logger

        logger.warning("malformed usage in answer", extra={"route_id": ctx.route.id})


# ---- the recipe ------------------------------------------------------------------------


def route_steps(
    route: CompiledRoute,
    authenticator: Authenticator[CompiledRoute],
    admission: Admission[CompiledRoute] | None,
    upstream: Upstream[CompiledRoute],
) -> list[Middleware]:
    """The recipe for one route, in the order a request meets the steps. Admission comes last:
    nothing the gateway refuses by itself spends the consumer's plan."""
    steps: list[Middleware] = [cors(route.cors)] if route.cors is not None else []
    if route.ip is not None:
        steps.append(check_ip)
    steps.append(limit_body)
    if not route.public:
        steps.append(authenticate(authenticator))
        if admission is not None:
            steps.append(state_plan(admission))
        steps.append(authorize)
    if route.validator is not None:
        steps.append(validate)
    if not route.public and admission is not None:
        steps += [prepare(upstream), admit(admission)]
        if route.metering is not None:
            steps.append(meter(route.metering))
    return steps


def build_chain(
    route: CompiledRoute, upstream: Upstream[CompiledRoute], steps: Sequence[Middleware]
) -> Handler:
    """Wrap the upstream call in `steps`, the first step outermost (Starlette's reversed loop)."""
    handler: Handler = upstream.call
    for step in reversed(steps):
        handler = step(handler)
    return handler
