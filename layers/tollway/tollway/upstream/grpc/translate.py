"""JSON over HTTP in, gRPC out, and back (SPEC §7): the request message, the call, the answer.

The request message is the backend's `body` template when it has one (`{param}` and
`{backend.field}` substituted), else the caller's JSON body (methods that carry one; an
empty body is an empty message), else an empty message. A message the caller's input does
not fit is a 400 before anything is sent — on a composed route, before any backend is
called (`check`). A template whose `{backend.field}` values do not fit fails that backend.

`proxy` answers the reply as JSON (200), a server stream as a JSON array or, when the
caller's Accept names `text/event-stream`, as Server-Sent Events: one `data:` line per
message, and an `event: error` whose data is the problem if the stream fails after its
first message. A non-OK status is the problem SPEC §7's table names (status.py). Under
`group` and `merge`, `value` gives the reply's JSON like any JSON backend's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollway.core.context import BackendOutcome, Context
from tollway.core.messages import Response
from tollway.core.problems import problem_response
from tollway.errors import BadGateway, BadRequest, GatewayError, GatewayTimeout
from tollway.table.routes import CompiledBackend, CompiledConfig, CompiledRoute
from tollway.table.templates import (
    ParamValueError,
    TemplateValueError,
    json_template_refs,
    render_json_template,
)
from tollway.upstream.cache import CACHEABLE, PER_FILL, Caches, fill_for
from tollway.upstream.call import BackendCaller, BackendFailure
from tollway.upstream.grpc.caller import GrpcCaller, StatusFailure, Stream
from tollway.upstream.grpc.channels import Channels
from tollway.upstream.grpc.codec import Codec, Codecs, MessageMismatch, NotAMessage
from tollway.upstream.grpc.metadata import Metadata, grpc_metadata
from tollway.upstream.grpc.status import status_problem
from tollway.upstream.request import backend_headers

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


def wants_events(accept: str | None) -> bool:
    return accept is not None and any(
        part.split(";")[0].strip().lower() == EVENT_STREAM for part in accept.split(",")
    )


def _event(data: bytes, kind: str | None = None) -> bytes:
    return (b"event: " + kind.encode() + b"\n" if kind else b"") + b"data: " + data + b"\n\n"


class GrpcUpstream:
    def __init__(self, http: BackendCaller, caches: Caches) -> None:
        self.codecs = Codecs()
        self.channels = Channels()
        self.caller = GrpcCaller(http, self.channels)
        self.caches = caches
        self._from_caller: dict[int, tuple[CompiledBackend, bool]] = {}

    def prepare(self, config: CompiledConfig) -> None:
        """Build every gRPC backend's message classes now (at init, before any request)."""
        for route in config.routes:
            for backend in route.backends:
                if backend.grpc is not None:
                    self.codecs.for_(backend.grpc)

    # ---- the request message ------------------------------------------------------------

    def _caller_only(self, backend: CompiledBackend) -> bool:
        """Whether the message comes from the caller alone (no `{backend.field}`)."""
        known = self._from_caller.get(id(backend))
        if known is None or known[0] is not backend:
            refs = json_template_refs(backend.body) if backend.body is not None else []
            alone = not any(ref.backend is not None for ref in refs)
            known = self._from_caller[id(backend)] = (backend, alone)
        return known[1]

    def message(
        self, backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any]
    ) -> bytes:
        """The serialized request message; `BadRequest` when the caller's input does not fit,
        `BackendFailure` when another backend's answer does not."""
        assert backend.grpc is not None
        codec = self.codecs.for_(backend.grpc)
        if backend.body is not None:
            try:
                value = render_json_template(backend.body, ctx.params, results)
            except ParamValueError as exc:
                raise BadRequest(str(exc)) from None
            except TemplateValueError as exc:
                raise BackendFailure(str(exc)) from None
        elif ctx.request.method in NO_BODY or not ctx.request.body:
            value = {}
        else:
            try:
                value = orjson.loads(ctx.request.body)
            except orjson.JSONDecodeError:
                raise BadRequest("the request body is not JSON") from None
        try:
            return codec.encode(value)
        except MessageMismatch as exc:
            if self._caller_only(backend):
                raise BadRequest(f"the request does not fit {codec.request_name}: {exc}") from None
            raise BackendFailure(f"its request message could not be built: {exc}") from None

    def check(self, ctx: Context[CompiledRoute]) -> None:
        """Before a composed route calls anything: every message made from the caller's input fits."""
        for backend in ctx.route.backends:
            if backend.grpc is not None and self._caller_only(backend):
                self.message(backend, ctx, {})

    def _metadata(
        self, backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any]
    ) -> Metadata:
        # A call whose answer a cache may store carries only what the entry's key covers
        # (upstream/cache.py Fill), exactly as an HTTP backend's request does.
        composed = ctx.route.compose != "proxy"
        fill = fill_for(ctx.request.method, ctx.route.cache, backend.cache if composed else None)
        try:
            return grpc_metadata(backend_headers(backend, ctx, results, fill))
        except ParamValueError as exc:
            raise BadRequest(str(exc)) from None
        except TemplateValueError as exc:
            raise BackendFailure(str(exc)) from None

    # ---- proxy ---------------------------------------------------------------------------

    async def proxy(self, ctx: Context[CompiledRoute]) -> Response:
        backend = ctx.route.backends[0]
        assert backend.grpc is not None
        message = self.message(backend, ctx, {})
        metadata = self._metadata(backend, ctx, {})
        codec = self.codecs.for_(backend.grpc)
        outcome = BackendOutcome(backend.name, None, 0.0)
        ctx.backends.append(outcome)
        started = time.monotonic()
        limit = ctx.route.max_response_bytes
        try:
            if not backend.grpc.server_streaming:
                reply = await self.caller.unary(
                    backend, message, metadata, ctx.deadline, limit, ctx.call_started
                )
                body = orjson.dumps(codec.decode(reply))
            elif wants_events(ctx.request.headers.get("accept")):
                stream = await self.caller.stream(
                    backend, message, metadata, ctx.deadline, limit, ctx.call_started
                )
                outcome.status = 200
                events = self._events(backend, ctx, codec, stream, outcome, started)
                head = [("content-type", EVENT_STREAM), ("cache-control", "no-cache"), ("vary", "Accept")]
                return Response(200, head, stream=events)
            else:
                stream = await self.caller.stream(
                    backend, message, metadata, ctx.deadline, limit, ctx.call_started
                )
                body = orjson.dumps(await self._collect(codec, stream, limit))
        except BackendFailure as failure:
            _record(outcome, failure, started)
            raise _problem(backend, failure) from None
        except NotAMessage as exc:
            _record(outcome, None, started)
            raise BadGateway(f"backend {backend.name} failed: {exc}") from None
        _record(outcome, None, started)
        head = [("content-type", JSON)]
        if backend.grpc.server_streaming:
            # Its form follows the caller's Accept: a cache must not give one form for the other.
            head.append(("vary", "Accept"))
        return Response(200, head, body)

    async def _collect(self, codec: Codec, stream: Stream, limit: int) -> list[Any]:
        """A server stream read out as a list of its messages' JSON."""
        values: list[Any] = []
        if stream.first is None:
            return values
        size = len(stream.first)
        values.append(codec.decode(stream.first))
        try:
            async for raw in stream.rest():
                size += len(raw)
                if size > limit:
                    raise BackendFailure(f"response exceeds {limit} bytes")
                values.append(codec.decode(raw))
        finally:
            stream.cancel()
        return values

    async def _events(
        self,
        backend: CompiledBackend,
        ctx: Context[CompiledRoute],
        codec: Codec,
        stream: Stream,
        outcome: BackendOutcome,
        started: float,
    ) -> AsyncIterator[bytes]:
        """The stream as Server-Sent Events, within the route's deadline (the call's timeout)."""
        failure: BackendFailure | None = None
        try:
            if stream.first is not None:
                yield _event(orjson.dumps(codec.decode(stream.first)))
                async for raw in stream.rest():
                    yield _event(orjson.dumps(codec.decode(raw)))
        except BackendFailure as exc:
            failure = exc
            yield _event(problem_response(_problem(backend, exc), ctx.request.request_id).body, "error")
        except NotAMessage as exc:
            failure = BackendFailure(str(exc), status=200, grpc_status="OK")
            error = BadGateway(f"backend {backend.name} failed: {exc}")
            yield _event(problem_response(error, ctx.request.request_id).body, "error")
        finally:
            stream.cancel()
            _record(outcome, failure, started)

    # ---- group and merge -----------------------------------------------------------------

    async def value(
        self, backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any]
    ) -> tuple[Any, int, str | None]:
        """The reply's JSON for a composed route: (value, HTTP status, cache-control)."""
        assert backend.grpc is not None
        message = self.message(backend, ctx, results)
        metadata = self._metadata(backend, ctx, results)
        cache = key = None
        if backend.cache is not None and ctx.request.method in CACHEABLE:
            cache = self.caches.for_((ctx.route.id, backend.name), backend.cache)
            # Keyed by what the call sends (who is asking is in the metadata of a per-consumer
            # cache), less the ids of the one call that fills it.
            sent = tuple((name, value) for name, value in metadata if name not in PER_FILL)
            key = ("grpc", message, sent)
            hit = cache.get(key)
            if hit is not None:
                return hit, 200, None
        codec = self.codecs.for_(backend.grpc)
        limit = ctx.route.max_response_bytes
        try:
            if backend.grpc.server_streaming:
                stream = await self.caller.stream(
                    backend, message, metadata, ctx.deadline, limit, ctx.call_started
                )
                value: Any = await self._collect(codec, stream, limit)
            else:
                value = codec.decode(
                    await self.caller.unary(backend, message, metadata, ctx.deadline, limit, ctx.call_started)
                )
        except NotAMessage as exc:
            raise BackendFailure(str(exc), status=200, grpc_status="OK") from None
        if cache is not None:
            cache.put(key, value, float(backend.cache.ttl_s))  # type: ignore[union-attr]
        return value, 200, None

    async def close(self) -> None:
        await self.channels.close()


def _record(outcome: BackendOutcome, failure: BackendFailure | None, started: float) -> None:
    """What the usage event says of the call: the HTTP status its gRPC status maps to."""
    outcome.latency_ms = (time.monotonic() - started) * 1000
    if failure is None:
        outcome.status, outcome.grpc_status = 200, "OK"
    else:
        outcome.status, outcome.grpc_status = failure.status, failure.grpc_status


def _problem(backend: CompiledBackend, failure: BackendFailure) -> GatewayError:
    if isinstance(failure, StatusFailure):
        return status_problem(backend.name, failure.code, failure.message)
    if failure.timed_out:
        return GatewayTimeout(f"backend {backend.name} did not answer in time")
    return BadGateway(f"backend {backend.name} failed: {failure.reason}")
