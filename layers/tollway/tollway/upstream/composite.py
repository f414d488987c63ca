"""`compose: group | merge`: fan out along the dependency graph, shape each answer, compose.

A required backend that fails makes the route fail: 504 if it ran out of time, else 502
(an error status — 4xx included, since the caller cannot fix a backend's refusal —, a
connection error, a body that is not JSON or not an object where one is needed). An
optional one that fails gives `null` (group) or nothing (merge), and its name in
`Tollway-Partial`. Problems name the backend, never quote its body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from tollway.core.context import BackendOutcome, Context
from tollway.core.messages import Response
from tollway.errors import BadGateway, GatewayTimeout
from tollway.table.routes import CompiledBackend, CompiledRoute
from tollway.table.templates import TemplateValueError
from tollway.upstream.cache import CACHEABLE, PER_FILL, Caches, storable_ttl
from tollway.upstream.call import BackendCaller, BackendFailure
from tollway.upstream.compose import NotAnObject, merge, read_json, shape, write_json
from tollway.upstream.fanout import DeadlinePassed, RequiredBackendFailed, fan_out
from tollway.upstream.request import build_request

if TYPE_CHECKING:
    from tollway.upstream.grpc import GrpcUpstream

JSON = "application/json"
# orjson writes at most 254 levels of nesting (reads 1024): a backend's JSON can be deeper.
TOO_DEEP = (TypeError, RecursionError)


def _compose(kind: str, backends: tuple[CompiledBackend, ...], shaped: dict[str, Any]) -> bytes:
    if kind == "merge":
        return write_json(merge(shaped.get(b.name) for b in backends))
    return write_json({b.name: shaped.get(b.name) for b in backends})


def _serializable(value: Any) -> bool:
    try:
        write_json([value])  # one level more, as under its name in a group
    except TOO_DEEP:
        return False
    return True


class Composite:
    def __init__(
        self, caller: BackendCaller, caches: Caches, grpc: Callable[[], GrpcUpstream] | None = None
    ) -> None:
        """`grpc`: the gRPC side, for routes with gRPC backends (made on first use)."""
        self.caller = caller
        self.caches = caches
        self.grpc = grpc

    async def respond(self, ctx: Context[CompiledRoute]) -> tuple[Response, list[str | None]]:
        """The composed response and the backends' Cache-Control values (for a route cache)."""
        cache_controls: list[str | None] = []
        recorded: set[str] = set()

        async def call(backend: CompiledBackend, results: dict[str, Any]) -> Any:
            started = time.monotonic()
            status: int | None = None
            grpc_status = None
            try:
                value, status, cache_control = await self._call(backend, ctx, results)
                grpc_status = "OK" if backend.grpc is not None else None
                cache_controls.append(cache_control)
                return value
            except BackendFailure as failure:
                status, grpc_status = failure.status, failure.grpc_status
                raise
            finally:
                recorded.add(backend.name)
                latency_ms = (time.monotonic() - started) * 1000
                ctx.backends.append(BackendOutcome(backend.name, status, latency_ms, grpc_status))

        route = ctx.route
        if self.grpc is not None and any(b.grpc is not None for b in route.backends):
            self.grpc().check(ctx)  # a message the caller's input does not fit: 400, nothing sent
        try:
            results, failures = await fan_out(route.backends, call, ctx.deadline)
        except RequiredBackendFailed as error:
            if error.failure.timed_out:
                raise GatewayTimeout(f"backend {error.backend} did not answer in time") from error
            raise BadGateway(f"backend {error.backend} failed: {error.failure.reason}") from error
        except DeadlinePassed as error:
            raise GatewayTimeout(
                f"the route's deadline passed waiting for {', '.join(error.waiting_for)}"
            ) from error
        finally:
            for backend in route.backends:
                if backend.name not in recorded:
                    ctx.backends.append(BackendOutcome(backend.name, None, 0.0))

        shaped: dict[str, Any] = {}
        for backend in route.backends:
            if backend.name not in results:
                continue
            try:
                value = shape(results[backend.name], backend.pick, backend.rename)
                if route.compose == "merge" and not isinstance(value, dict | None):
                    raise NotAnObject("merge needs a JSON object")
            except NotAnObject as exc:
                if backend.required:
                    raise BadGateway(f"backend {backend.name} failed: {exc}") from exc
                failures[backend.name] = BackendFailure(str(exc))
                continue
            shaped[backend.name] = value
        try:
            body = _compose(route.compose, route.backends, shaped)
        except TOO_DEEP:
            for backend in route.backends:
                if backend.name in shaped and not _serializable(shaped[backend.name]):
                    reason = "its answer is nested too deeply"
                    if backend.required:
                        raise BadGateway(f"backend {backend.name} failed: {reason}") from None
                    failures[backend.name] = BackendFailure(reason)
                    del shaped[backend.name]
            body = _compose(route.compose, route.backends, shaped)
        headers = [("content-type", JSON)]
        if failures:
            missing = ", ".join(b.name for b in route.backends if b.name in failures)
            headers.append(("tollway-partial", missing))
        return Response(200, headers, body), cache_controls

    async def _call(
        self, backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any]
    ) -> tuple[Any, int | None, str | None]:
        if backend.grpc is not None and self.grpc is not None:
            return await self.grpc().value(backend, ctx, results)
        try:
            request = ctx.prepared.get(backend.name) or build_request(backend, ctx, results, composed=True)
        except TemplateValueError as exc:
            raise BackendFailure(str(exc)) from exc
        cache = key = None
        if backend.cache is not None and ctx.request.method in CACHEABLE:
            cache = self.caches.for_((ctx.route.id, backend.name), backend.cache)
            # The request carries only what the entry may depend on (upstream/request.py):
            # it is the key, but for the ids of the one request that fills it.
            fields = tuple((k, v) for k, v in request.headers if k not in PER_FILL)
            key = (request.method, request.path, fields, request.body)
            hit = cache.get(key)
            if hit is not None:
                return hit[0], hit[1], None
        answer = await self.caller.send(
            backend, request, ctx.deadline, ctx.route.max_response_bytes, raw=False, on_call=ctx.call_started
        )
        if answer.status >= 400:
            raise BackendFailure(f"it answered {answer.status}", status=answer.status)
        if not answer.body and answer.status in (204, 205):
            value = None
        else:
            try:
                value = read_json(answer.body)
            except orjson.JSONDecodeError as exc:
                raise BackendFailure("its answer is not JSON", status=answer.status) from exc
        cache_control = answer.headers.get("cache-control")
        if cache is not None and key is not None:
            cache.put(key, (value, answer.status), storable_ttl(backend.cache, [cache_control]))
        return value, answer.status, cache_control
