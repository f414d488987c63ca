"""One backend call: circuit breaker, per-attempt timeout inside the deadline, retries, size cap.

`BackendCaller.send` returns the backend's `Answer` (any status; the caller decides what a
4xx means) or raises `BackendFailure`, which never carries the backend's body.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import httpx

from tollway.config.compile import CompiledBackend
from tollway.upstream.breaker import Breakers
from tollway.upstream.request import BackendRequest
from tollway.upstream.retry import RETRY_STATUSES, attempts_for, backoff_s


class BackendFailure(Exception):
    """A backend gave no usable answer. `reason` is safe to show a caller."""

    def __init__(self, reason: str, *, timed_out: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out
        self.status = status


class ResponseTooLarge(BackendFailure):
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class BackendCaller:
    def __init__(
        self,
        client: httpx.AsyncClient,
        breakers: Breakers,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.breakers = breakers
        self.rng = rng

    async def send(
        self, backend: CompiledBackend, request: BackendRequest, deadline: float, limit: int, *, raw: bool
    ) -> Answer:
        """`raw`: keep the body as sent (content-encoding and all) for passing it through."""
        if backend.base_url is None:
            raise BackendFailure(f"service {backend.service} has no URL in this stage")
        breaker = self.breakers.get(backend.base_url, backend.breaker)
        attempts = attempts_for(request.method, backend.retry)
        failure: BackendFailure | None = None
        answer: Answer | None = None
        for attempt in range(1, attempts + 1):
            budget = min(backend.timeout_s, deadline - time.monotonic())
            if budget <= 0:
                raise BackendFailure("no time left before the deadline", timed_out=True)
            if not breaker.allow():
                raise BackendFailure("circuit open")
            failure = answer = None
            try:
                async with asyncio.timeout(budget):
                    answer = await self._once(request, limit, raw)
            except ResponseTooLarge:
                breaker.success()
                raise
            except TimeoutError:
                breaker.failure()
                failure = BackendFailure("no answer in time", timed_out=True)
            # The aiohttp transport maps most of its errors to httpx's, not all of them.
            except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
                breaker.failure()
                failure = BackendFailure(f"connection failed ({type(exc).__name__})")
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
            pause = backoff_s(backend.retry, attempt, self.rng)
            # A retry that could not finish by the deadline only adds load.
            if attempt == attempts or time.monotonic() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        if answer is not None:
            return answer
        assert failure is not None
        raise failure

    async def _once(self, request: BackendRequest, limit: int, raw: bool) -> Answer:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
        built = self.client.build_request(request.method, request.url, headers=headers, content=request.body)
        response = await self.client.send(built, stream=True)
        try:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise ResponseTooLarge(f"response exceeds {limit} bytes")
            chunks = []
            size = 0
            async for chunk in response.aiter_raw() if raw else response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLarge(f"response exceeds {limit} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
        return Answer(response.status_code, response.headers, b"".join(chunks))
