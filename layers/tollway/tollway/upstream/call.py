"""One backend call: instance choice, circuit breakers, per-try timeouts, retries, size cap.

`BackendCaller.send` returns the backend's `Answer` (any status; the caller decides what a
4xx means) or raises `BackendFailure`, which never carries the backend's body.

Each try goes to the instance the service's rotation picks (`balancer.py`), skipping those
whose breaker is open; each instance URL has its own breaker. Two ways to try again:
- failover: a refused connection sends nothing, so an idempotent call moves on to the next
  instance at once, without spending a retry or waiting a backoff, as long as one is left;
- retry: a 5xx, a timeout or a broken connection spends one of `retry.attempts` (idempotent
  methods only) and the next try, after a backoff, goes to the next instance.
A POST or PATCH is sent once: a refused connection is its 502 (over a pooled connection
the client cannot always tell "refused" from "sent, then lost"). All within the deadline.

Requests go through the container's one `Exchanger` (`tollway/transport/exchange.py`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from tollway.core.messages import BackendRequest, StreamCut
from tollway.table.routes import CompiledBackend
from tollway.table.targets import Reference
from tollway.transport.exchange import ExchangeError, Exchanger, RawResponse, Refused, ResponseHeaders
from tollway.upstream.balancer import Balancers
from tollway.upstream.breaker import Breakers
from tollway.upstream.retry import IDEMPOTENT, RETRY_STATUSES, attempts_for, backoff_s


def refused(exc: BaseException) -> bool:
    """Whether the request was never written: safe to send it to another instance."""
    return isinstance(exc, Refused)


class Directory(Protocol):
    """The current instances of a discovered service; never blocks on a lookup."""

    def instances(self, reference: Reference) -> tuple[str, ...]: ...


class BackendFailure(Exception):
    """A backend gave no usable answer. `reason` is safe to show a caller."""

    def __init__(
        self,
        reason: str,
        *,
        timed_out: bool = False,
        status: int | None = None,
        grpc_status: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out
        self.status = status
        self.grpc_status = grpc_status  # a gRPC backend's status, by name (tollway/upstream/grpc)


class ResponseTooLarge(BackendFailure):
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: ResponseHeaders
    body: bytes
    stream: AsyncIterator[bytes] | None = None  # an event stream, not read yet (`send(stream=True)`)


EVENT_STREAM = "text/event-stream"


def is_event_stream(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == EVENT_STREAM


class BackendCaller:
    def __init__(
        self,
        exchanger: Exchanger,
        breakers: Breakers,
        rng: Callable[[], float] = random.random,
        directory: Directory | None = None,
    ) -> None:
        self.exchanger = exchanger
        self.breakers = breakers
        self.rng = rng
        self.balancers = Balancers(rng)
        self.directory = directory

    def instances(self, backend: CompiledBackend) -> tuple[str, ...]:
        target = backend.target
        if target is None:
            raise BackendFailure(f"service {backend.service} has no URL in this stage")
        if target.reference is None:
            return target.urls
        found = self.directory.instances(target.reference) if self.directory is not None else ()
        if not found:
            raise BackendFailure(f"service {backend.service} has no known instances")
        return found

    async def send(
        self,
        backend: CompiledBackend,
        request: BackendRequest,
        deadline: float,
        limit: int,
        *,
        raw: bool,
        stream: bool = False,
        on_call: Callable[[], None] | None = None,
    ) -> Answer:
        """`raw`: keep the body as sent (content-encoding and all) for passing it through.
        `stream`: a 2xx event stream comes back unread, as `Answer.stream`, read by the
        deadline; the caller must read it to its end or close it. `on_call` is called before
        each try is handed to the HTTP client: from then on the backend may have the request
        (what makes an answer billable, even a failed one); a refusal before that (no
        instance, every breaker open, no time left) never calls it."""
        instances = self.instances(backend)
        rotation = self.balancers.for_(backend.service)
        breakers, config = self.breakers, backend.breaker

        def allow(url: str) -> bool:
            return breakers.get(url, config).allow()

        attempts = attempts_for(request.method, backend.retry)
        skip: set[str] = set()  # instances that refused this request's connection
        failure: BackendFailure | None = None
        answer: Answer | None = None
        attempt = 0
        while True:
            budget = min(backend.timeout_s, deadline - time.monotonic())
            if budget <= 0:
                raise BackendFailure("no time left before the deadline", timed_out=True)
            url = rotation.pick(instances, allow, skip)
            if url is None:
                break
            breaker = breakers.get(url, config)
            failure = answer = None
            if on_call is not None:
                on_call()
            try:
                async with asyncio.timeout(budget):
                    answer = await self._once(url, request, limit, raw, deadline if stream else None)
            except ResponseTooLarge:
                breaker.success()
                raise
            except TimeoutError:
                breaker.failure()
                failure = BackendFailure("no answer in time", timed_out=True)
            except ExchangeError as exc:
                breaker.failure()
                if refused(exc):
                    failure = BackendFailure("could not connect")
                    if request.method in IDEMPOTENT:
                        skip.add(url)
                        continue
                else:
                    failure = BackendFailure(f"connection failed ({type(exc.__cause__ or exc).__name__})")
            except BaseException:
                breaker.release()
                raise
            else:
                if answer.status >= 500:
                    breaker.failure()
                else:
                    breaker.success()
                if answer.status not in RETRY_STATUSES:
                    return answer
            attempt += 1
            pause = backoff_s(backend.retry, attempt, self.rng)
            # A retry that could not finish by the deadline only adds load.
            if attempt >= attempts or time.monotonic() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        if answer is not None:
            return answer
        raise failure or BackendFailure("circuit open")

    async def _once(
        self, base_url: str, request: BackendRequest, limit: int, raw: bool, stream_until: float | None
    ) -> Answer:
        response = await self.exchanger.request(
            request.method, base_url + request.path, request.headers, request.body, decode=not raw
        )
        streams = stream_until is not None and 200 <= response.status < 300
        if streams and is_event_stream(response.headers.get("content-type")):
            assert stream_until is not None
            return Answer(response.status, response.headers, b"", _relay(response, stream_until))
        try:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise ResponseTooLarge(f"response exceeds {limit} bytes")
            chunks = []
            size = 0
            async for chunk in response.chunks():
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLarge(f"response exceeds {limit} bytes")
                chunks.append(chunk)
        finally:
            await response.close()
        return Answer(response.status, response.headers, b"".join(chunks))


async def _relay(response: RawResponse, deadline: float) -> AsyncIterator[bytes]:
    """The stream's chunks as they arrive, until it ends or the route's deadline passes
    (then it is cut: its head is long gone, so there is no status left to change; StreamCut
    tells the meter that its usage may not have arrived)."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            async for chunk in response.chunks():
                yield chunk
    except (TimeoutError, ExchangeError) as exc:
        raise StreamCut(type(exc).__name__) from None
    finally:
        await response.close()
