"""The per-request context: one request on its way through its route's steps.

A `Context` is made when a request matches a route and lives until its answer has passed
(a stream's included). Steps read the request and write what they learn: who is calling,
what admission spent and what the answer cost, which backends were called and how they
answered. The usage event and the access log are written from it.

The floor knows of a route only its id and its deadline (`Routed`); a context is typed
with the route it was matched to, `Context[Route]` (the compiled route table's, tollway/table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from tollway.core.messages import BackendRequest, Request
from tollway.core.principal import ANONYMOUS, Principal


class Routed(Protocol):
    """What the floor reads of a route."""

    @property
    def id(self) -> str: ...

    @property
    def timeout_s(self) -> float: ...  # the whole request's deadline, from its arrival


R = TypeVar("R", bound=Routed)


@dataclass(slots=True)
class BackendOutcome:
    name: str
    status: int | None  # None: no HTTP answer (timeout, refused, breaker open, skipped)
    latency_ms: float
    # A gRPC backend's status by name ("OK", "NOT_FOUND"); `status` is the HTTP status it maps to.
    grpc_status: str | None = None


@dataclass(slots=True)
class Context(Generic[R]):
    request: Request
    route: R
    params: dict[str, str]
    started: float  # time.monotonic() when the request arrived
    principal: Principal = ANONYMOUS
    admitted: bool = False
    cost_units: int = 0  # what is billed: the route's cost, or a metered answer's actual cost
    reserved_units: int = 0  # what admission spent on the counter
    # The wall-clock instant a quota counter counted the request (its period is the counter's):
    # the usage event's timestamp, so that the event is billed in the counter's period.
    # None: no counter counted it (an admitted request is then billed from its event alone).
    counted_at: float | None = None
    usage: dict[str, int | float] | None = None  # a metered answer's raw usage fields
    usage_status: str | None = None  # a metered answer: "read", "missing" or "malformed"
    backends: list[BackendOutcome] = field(default_factory=list)
    # Backend requests rendered before admission (`prepare`), by backend name.
    prepared: dict[str, BackendRequest] = field(default_factory=dict)
    called: bool = False  # a request was handed to a backend's connection (it may have it)

    @property
    def deadline(self) -> float:
        return self.started + self.route.timeout_s

    def call_started(self) -> None:
        self.called = True
