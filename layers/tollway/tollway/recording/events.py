"""The usage event as the router writes it: one per request that reached a route (SPEC §6).

An event is a plain dict (`from_context`, a few µs: nothing is validated on the response
path) carrying no credential, header or body: only who, what, when and how much. Events
travel in messages, `{"version": 1, "producer": P, "seq": N, "events": [...]}` of at most
`MAX_EVENTS` (tollway.recording.emitter). The usage function validates each message
against the schema of both (tollway.usage.events, pydantic: never imported by the router).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tollway.core.context import BackendOutcome, Context
    from tollway.core.messages import Response

VERSION = 1
# Events per message: bounds the routes one consumer's part of a message can touch, so that
# a part always fits one DynamoDB transaction (tollway.usage.billing), and ~40 events of
# ~0.5 KB stay under 64 KB, one SQS request.
MAX_EVENTS = 40


def from_context(ctx: Context, response: Response, latency_ms: float) -> dict[str, Any]:
    """The event of one finished request, as the JSON-ready dict that goes on the queue."""
    # A request a quota counter counted is dated when it was counted: a request that arrived
    # before midnight and was admitted after it is billed in one period, not in both (its event
    # in the old one, the true-up's reading of its counter in the new one).
    arrived = ctx.counted_at if ctx.counted_at is not None else time.time() - latency_ms / 1000
    event: dict[str, Any] = {
        "version": VERSION,
        "event_id": uuid.uuid4().hex,
        "timestamp": datetime.fromtimestamp(arrived, UTC).isoformat(timespec="milliseconds"),
        "request_id": ctx.request.request_id,
        "consumer_id": ctx.principal.consumer_id,
        "plan": ctx.principal.plan,
        "route_id": ctx.route.id,
        "method": ctx.request.method,
        "status": response.status,
        "latency_ms": round(latency_ms, 3),
        "request_bytes": len(ctx.request.body),
        "response_bytes": response.size,
        "cost_units": ctx.cost_units,
        "admitted": ctx.admitted,
        "backends": [_backend(b) for b in ctx.backends],
    }
    if ctx.admitted and ctx.counted_at is None:
        event["counted"] = False
    if ctx.usage_status is not None:
        event["reserved_units"] = ctx.reserved_units
        event["usage"] = ctx.usage
        event["usage_status"] = ctx.usage_status
    return event


def _backend(outcome: BackendOutcome) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": outcome.name,
        "status": outcome.status,
        "latency_ms": round(outcome.latency_ms, 3),
    }
    if outcome.grpc_status is not None:
        entry["grpc_status"] = outcome.grpc_status
    return entry
