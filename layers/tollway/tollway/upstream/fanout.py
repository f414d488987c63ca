"""Run a route's backends along their dependency graph, all within the route's deadline.

Backends arrive in an order where dependencies come first, each with the set of names it
`depends_on` (computed when the config was compiled). Every backend whose dependencies
have answered starts at once, as its own task; one that depends on a failed or skipped
backend is skipped. A required backend that fails ends the fan-out at once; at the
deadline, outstanding calls are cancelled. Either way no task outlives `fan_out`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tollway.table.routes import CompiledBackend
from tollway.upstream.call import BackendFailure

Call = Callable[[CompiledBackend, dict[str, Any]], Awaitable[Any]]


class RequiredBackendFailed(Exception):
    def __init__(self, backend: str, failure: BackendFailure) -> None:
        super().__init__(f"backend {backend}: {failure.reason}")
        self.backend = backend
        self.failure = failure


class DeadlinePassed(Exception):
    def __init__(self, waiting_for: list[str]) -> None:
        super().__init__(f"deadline passed waiting for {', '.join(waiting_for)}")
        self.waiting_for = waiting_for


async def fan_out(
    backends: Sequence[CompiledBackend], call: Call, deadline: float
) -> tuple[dict[str, Any], dict[str, BackendFailure]]:
    """Returns (answers of the backends that succeeded, failures of the optional ones).

    Raises `RequiredBackendFailed` or `DeadlinePassed`; skipped optional backends are in
    the failures, marked `skipped`.
    """
    results: dict[str, Any] = {}
    failures: dict[str, BackendFailure] = {}
    waiting = list(backends)
    running: dict[asyncio.Task[Any], CompiledBackend] = {}

    def fail(backend: CompiledBackend, failure: BackendFailure) -> None:
        if backend.required:
            raise RequiredBackendFailed(backend.name, failure)
        failures[backend.name] = failure

    def start_ready() -> None:
        for backend in list(waiting):
            if backend.depends_on <= results.keys():
                waiting.remove(backend)
                running[asyncio.ensure_future(call(backend, results))] = backend
            elif backend.depends_on & failures.keys():
                waiting.remove(backend)
                lost = ", ".join(sorted(backend.depends_on & failures.keys()))
                fail(backend, BackendFailure(f"skipped: depends on {lost}, which failed"))

    try:
        start_ready()
        while running:
            done, _ = await asyncio.wait(
                running, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                required = [b.name for b in (*running.values(), *waiting) if b.required]
                if required:
                    raise DeadlinePassed(required)
                for backend in running.values():
                    failures[backend.name] = BackendFailure("no answer by the deadline", timed_out=True)
                for backend in waiting:
                    failures[backend.name] = BackendFailure("skipped: the deadline passed")
                return results, failures
            for task in done:
                backend = running.pop(task)
                try:
                    results[backend.name] = task.result()
                except BackendFailure as failure:
                    fail(backend, failure)
            start_ready()
        return results, failures
    finally:
        for task in running:
            task.cancel()
        if running:
            # Wait for the cancellations to land, so connections are closed, not leaked.
            await asyncio.gather(*running, return_exceptions=True)
