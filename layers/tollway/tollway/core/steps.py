"""The shapes of the pipeline's steps (Lura's `Proxy` and `Middleware`), and of the parts a
step hands its work to.

    Handler      a request's context in, its response out (or a GatewayError raised)
    Middleware   wraps a Handler in a step; `tollway.pipeline.route_steps` lists a route's
                 steps, `build_chain` wraps them around the upstream call once per route

A step that has work to do after the answer does it after `await next`, on the response
or on the error on its way out (a GatewayError's `headers` reach the problem answer); for
an event stream, `after` defers that work to the stream's end.

Each protocol is generic in the route type the contexts carry (`Context[Route]`), so this
floor needs none of the compiled route table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from tollway.core.context import Context, Routed
from tollway.core.messages import Request, Response
from tollway.core.principal import Principal

R = TypeVar("R", bound=Routed)
R_contra = TypeVar("R_contra", bound=Routed, contravariant=True)

Handler = Callable[[Context[R]], Awaitable[Response]]
Middleware = Callable[[Handler[R]], Handler[R]]


class Authenticator(Protocol[R_contra]):
    async def authenticate(
        self, request: Request, route: R_contra, deadline: float | None = None
    ) -> Principal: ...


class Spend(Protocol):
    """One request's admission."""

    async def run(self) -> None:
        """Spend the plan for the request (`ctx.admitted`, `reserved_units`, `cost_units`), or
        raise the refusal (429 over a limit, 503 the store is unavailable, 403 no such plan)."""
        ...

    def settle(self) -> None:
        """After the answer: correct what was spent to `ctx.cost_units`, off the caller's path."""
        ...

    def remaining(self) -> str | None:
        """The `RateLimit` field: what is left of the plan as this admission saw it (after its
        settle); None when nothing was counted."""
        ...


class Admission(Protocol[R_contra]):
    """The principal's plan: stated on every answer, spent by each admitted request."""

    def policy(self, principal: Principal) -> list[tuple[str, str]]:
        """The plan's `RateLimit-Policy` field (none for a plan without limits)."""
        ...

    def spend(self, ctx: Context[R_contra]) -> Spend:
        """This request's admission, not yet run."""
        ...


class Upstream(Protocol[R_contra]):
    def prepare(self, ctx: Context[R_contra]) -> None:
        """Before admission: raise what `call` would raise before calling any backend."""
        ...

    async def call(self, ctx: Context[R_contra]) -> Response: ...


class UsageRecorder(Protocol):
    """Buffers a finished request's usage event; never blocks on AWS."""

    def record(self, ctx: Context, response: Response, latency_ms: float) -> None: ...


class AccessLog(Protocol):
    def __call__(
        self,
        request: Request,
        response: Response,
        route_id: str | None,
        latency_ms: float,
        consumer: str | None,
    ) -> None: ...


def after(
    response: Response, work: Callable[[bool], None], each: Callable[[bytes], None] | None = None
) -> None:
    """Do `work(cut)` once the whole answer has passed: now, or when its event stream has
    ended (`cut`: before the backend's end of it, or abandoned by the caller); `each` sees
    every chunk on its way. A `StreamCut` goes on to the steps outside."""
    if response.stream is None:
        work(False)
        return
    response.stream = _watched(response.stream, work, each)


async def _watched(
    stream: AsyncIterator[bytes], work: Callable[[bool], None], each: Callable[[bytes], None] | None
) -> AsyncIterator[bytes]:
    ended = False
    try:
        async for chunk in stream:
            if each is not None:
                each(chunk)
            yield chunk
        ended = True
    finally:
        if not ended:  # cut, or the caller left: close what it came from at once
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        work(not ended)
