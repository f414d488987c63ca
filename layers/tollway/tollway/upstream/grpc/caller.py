"""One gRPC call: instance choice, circuit breakers, deadline, retries — as for HTTP backends.

Each try goes to the instance the service's rotation picks (`tollway/upstream/balancer.py`),
skipping those whose breaker is open, and carries a `grpc-timeout` of the backend's
`timeout_ms` or the time left to the route's deadline, whichever is shorter. A status that
says the service failed (one SPEC §7 maps to 502 or 504: UNAVAILABLE, INTERNAL,
DEADLINE_EXCEEDED...) counts against the instance's breaker; any other status means the
service is alive.

gRPC has no method verb: a call is tried again only on a backend marked `idempotent: true`,
after a failure `RETRY_CODES` names, after a backoff, on the next instance, within the
deadline. A server-streaming call is tried again only before its first message.

Failures are `BackendFailure`s (tollway/upstream/call.py): `StatusFailure` for a status
the service sent, carrying its message for a `proxy` route to show when the status is a
refusal; the breaker-open, no-instance and deadline cases as for HTTP backends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from tollway.table.routes import CompiledBackend
from tollway.upstream.breaker import CircuitBreaker
from tollway.upstream.call import BackendCaller, BackendFailure, ResponseTooLarge
from tollway.upstream.grpc.channels import Channels
from tollway.upstream.grpc.metadata import Metadata
from tollway.upstream.grpc.status import http_status, server_fault
from tollway.upstream.retry import backoff_s

T = TypeVar("T")
# The statuses worth another try of an idempotent call (HTTP's 500, 502, 503, 504).
RETRY_CODES = frozenset({"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"})
# grpc enforces each call's deadline itself; this only catches a call that outlives it.
GRACE_S = 0.05


class StatusFailure(BackendFailure):
    """The call ended with a non-OK status; `message` is the service's status message."""

    def __init__(self, code: str, message: str) -> None:
        status = http_status(code)
        super().__init__(
            f"it answered gRPC status {code}", timed_out=status == 504, status=status, grpc_status=code
        )
        self.code = code
        self.message = message


def _failure(exc: grpc.aio.AioRpcError, limit: int) -> BackendFailure:
    code = exc.code().name
    # grpc's own refusal of a reply over the channel's receive limit (channels.py) is a
    # too-large answer, not the service's RESOURCE_EXHAUSTED.
    if code == "RESOURCE_EXHAUSTED" and "larger than max" in (exc.details() or ""):
        return ResponseTooLarge(f"response exceeds {limit} bytes")
    return StatusFailure(code, exc.details() or "")


@dataclass(slots=True)
class Stream:
    """A server-streaming call whose first message has arrived (or that ended without one)."""

    call: grpc.aio.UnaryStreamCall
    first: bytes | None  # None: the stream ended with OK and no message
    breaker: CircuitBreaker
    limit: int

    async def rest(self) -> AsyncIterator[bytes]:
        """The messages after the first, until the stream ends; a failure as `BackendFailure`."""
        if self.first is None:
            return
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    return
                yield message
        except grpc.aio.AioRpcError as exc:
            failure = _failure(exc, self.limit)
            if failure.grpc_status is None or server_fault(failure.grpc_status):
                self.breaker.failure()
            raise failure from None

    def cancel(self) -> None:
        self.call.cancel()


class GrpcCaller:
    def __init__(self, http: BackendCaller, channels: Channels) -> None:
        """`http`'s instances, rotations, breakers and jitter serve gRPC backends too."""
        self.http = http
        self.channels = channels

    async def unary(
        self,
        backend: CompiledBackend,
        message: bytes,
        metadata: Metadata,
        deadline: float,
        limit: int,
        on_call: Callable[[], None] | None = None,
    ) -> bytes:
        """The reply's bytes; raises `BackendFailure`. `on_call`: as `BackendCaller.send`'s,
        called before each try is handed to the channel (the service may have it from then on)."""

        async def once(channel: grpc.aio.Channel, budget: float, breaker: CircuitBreaker) -> bytes:
            assert backend.grpc is not None
            call = channel.unary_unary(backend.grpc.path)
            reply = await call(message, timeout=budget, metadata=metadata)
            if len(reply) > limit:
                raise ResponseTooLarge(f"response exceeds {limit} bytes")
            return reply

        return await self._tries(backend, deadline, limit, once, on_call)

    async def stream(
        self,
        backend: CompiledBackend,
        message: bytes,
        metadata: Metadata,
        deadline: float,
        limit: int,
        on_call: Callable[[], None] | None = None,
    ) -> Stream:
        """A server-streaming call, once its first message (or its end) has arrived. The
        `grpc-timeout` covers the whole stream; the caller must read it out or cancel it."""

        async def once(channel: grpc.aio.Channel, budget: float, breaker: CircuitBreaker) -> Stream:
            assert backend.grpc is not None
            call = channel.unary_stream(backend.grpc.path)(message, timeout=budget, metadata=metadata)
            try:
                first = await call.read()
            except BaseException:
                call.cancel()
                raise
            return Stream(call, None if first is grpc.aio.EOF else first, breaker, limit)

        return await self._tries(backend, deadline, limit, once, on_call)

    async def _tries(
        self,
        backend: CompiledBackend,
        deadline: float,
        limit: int,
        once: Callable[[grpc.aio.Channel, float, CircuitBreaker], Awaitable[T]],
        on_call: Callable[[], None] | None = None,
    ) -> T:
        http = self.http
        instances = http.instances(backend)
        rotation = http.balancers.for_(backend.service)
        breakers, config = http.breakers, backend.breaker
        attempts = backend.retry.attempts if backend.idempotent else 1
        failure: BackendFailure | None = None
        attempt = 0
        while True:
            budget = min(backend.timeout_s, deadline - time.monotonic())
            if budget <= 0:
                raise BackendFailure("no time left before the deadline", timed_out=True)
            url = rotation.pick(instances, lambda u: breakers.get(u, config).allow())
            if url is None:
                break
            breaker = breakers.get(url, config)
            try:
                channel = self.channels.get(url)
            except ValueError:
                breaker.release()
                raise BackendFailure(f"service {backend.service} has no gRPC URL") from None
            if on_call is not None:
                on_call()
            try:
                async with asyncio.timeout(budget + GRACE_S):
                    result = await once(channel, budget, breaker)
            except ResponseTooLarge:
                breaker.success()
                raise
            except TimeoutError:
                breaker.failure()
                failure = BackendFailure("no answer in time", timed_out=True, grpc_status="DEADLINE_EXCEEDED")
            except grpc.aio.AioRpcError as exc:
                failure = _failure(exc, limit)
                if isinstance(failure, ResponseTooLarge):
                    breaker.success()
                    raise failure from None
                if not server_fault(failure.grpc_status or "UNKNOWN"):
                    breaker.success()
                    raise failure from None
                breaker.failure()
            except BaseException:
                breaker.release()
                raise
            else:
                breaker.success()
                return result
            attempt += 1
            if failure.grpc_status not in RETRY_CODES:
                break
            pause = backoff_s(backend.retry, attempt, http.rng)
            if attempt >= attempts or time.monotonic() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        raise failure or BackendFailure("circuit open")
