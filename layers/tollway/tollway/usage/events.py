"""The schema of the usage event (SPEC §6), version 1: one per request that reached a route;
and of the SQS message that carries events.

The router builds events as plain dicts (tollway.recording.events: no pydantic on its
path); the usage function validates every message against `UsageMessage`
(or, for a message that is one bare event, as routers before messages sent them and
`tollway usage replay` of old log lines does, `UsageEvent`).
An event carries no credential, header or body: only who, what, when and how much.

A message is `{"version": 1, "producer": P, "seq": N, "events": [...]}`: P names the
router container that sent it (random, made at its first flush), N counts its messages
from 0. (P, N) is the message's identity: a message sent twice (a retried send, a
redelivery, a replay of the unsent log) carries the same P, N and events, and the usage
function records it once (tollway.usage.billing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tollway.recording.events import MAX_EVENTS, VERSION

__all__ = ["MAX_EVENTS", "VERSION", "BackendUsage", "UsageEvent", "UsageMessage"]


GrpcStatus = Literal[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
]


class BackendUsage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    status: int | None = Field(
        description="HTTP status, or null when the backend gave no answer; for a gRPC backend, "
        "the HTTP status its gRPC status maps to (SPEC §7)"
    )
    latency_ms: Annotated[float, Field(ge=0)]
    # gRPC backends only; absent from HTTP backends' entries, so earlier v1 events stay valid.
    grpc_status: GrpcStatus | None = Field(
        None, description="A gRPC backend's status code, by name; absent for HTTP backends"
    )


class UsageEvent(BaseModel):
    """A usage event as it travels through SQS; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Tollway usage event v1")

    version: Literal[1]
    event_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    timestamp: datetime = Field(
        description="When the request arrived (RFC 3339, UTC); for a request a quota counter "
        "counted, the instant it was counted, so that the event falls in the counter's period"
    )
    request_id: Annotated[str, Field(max_length=200)]
    consumer_id: Annotated[str, Field(min_length=1, max_length=256)]
    plan: Annotated[str, Field(max_length=64)] = Field(description="Empty for anonymous callers")
    route_id: Annotated[str, Field(min_length=1, max_length=128)]
    method: Annotated[str, Field(min_length=1, max_length=16)]
    status: Annotated[int, Field(ge=100, le=599)]
    latency_ms: Annotated[float, Field(ge=0)]
    request_bytes: Annotated[int, Field(ge=0)]
    response_bytes: Annotated[int, Field(ge=0)]
    cost_units: Annotated[int, Field(ge=0)] = Field(
        description="Units billed: the route's cost, or what a metered answer said it cost"
    )
    admitted: bool = Field(description="The request passed authentication, scopes and quota")
    backends: list[BackendUsage]
    # Metered routes only (docs/metering.md); absent from events of other routes and of
    # routers older than metering, so v1 events stay valid.
    reserved_units: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Units admission reserved on the quota counter before the answer"
    )
    usage: dict[Annotated[str, Field(max_length=200)], Annotated[float, Field(ge=0)]] | None = Field(
        None, description="The raw usage fields read from the answer, by field path"
    )
    usage_status: Literal["read", "missing", "malformed"] | None = Field(
        None, description="Whether the answer carried usage: read, missing (charged the default) or malformed"
    )
    # Admitted requests no quota counter counted: billed from their event alone, never from a
    # counter (tollway.usage.report). Absent: counted, or not admitted.
    counted: Literal[False] | None = Field(
        None,
        description="false: admitted without a quota counter counting it (the quota store failed "
        "open, or the plan keeps no counter); absent otherwise",
    )

    @property
    def day(self) -> str:
        return self.timestamp.astimezone(UTC).strftime("%Y-%m-%d")

    @property
    def month(self) -> str:
        return self.timestamp.astimezone(UTC).strftime("%Y-%m")


class UsageMessage(BaseModel):
    """An SQS message of the usage queue: events from one router container, numbered."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Tollway usage message v1")

    version: Literal[1]
    producer: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = Field(
        description="The sending router container's random id"
    )
    seq: Annotated[int, Field(ge=0, lt=2**53)] = Field(description="The message's number from that container")
    events: Annotated[list[UsageEvent], Field(min_length=1, max_length=MAX_EVENTS)]
