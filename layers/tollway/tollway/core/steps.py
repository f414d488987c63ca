"""The shapes of the pipeline's steps (Lura's `Proxy` and `Middleware`), and of the parts a
step hands its work to.

    Handler      a request's context in, its response out (or a GatewayError raised)
    Middleware   wraps a Handler in a step; `tollway.pipeline.route_steps` lists a route's
                 steps, `build_chain` wraps them around the upstream call once per route

Each protocol is generic in the route type the contexts carry (`Context[Route]`), so this
floor needs none of the compiled route table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


class Admission(Protocol[R_contra]):
    """Spends the principal's plan for this request or raises TooManyRequests."""

    async def admit(self, ctx: Context[R_contra]) -> None: ...

    def policy(self, principal: Principal) -> list[tuple[str, str]]:
        """The plan's RateLimit policy fields, for answers that were not admitted or refused here."""
        ...

    def settle(self, ctx: Context[R_contra]) -> None:
        """After a metered answer: correct the reservation to `cost_units` (off the caller's path)."""
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
