"""Before admission: refuse what the upstream would refuse before calling any backend.

The quota step spends only for requests a backend will be asked to answer (docs/metering.md,
"What is charged"), so the refusals the upstream makes on its own are made here, first, in
the order the call would make them:

- a caller's value that cannot go where the route puts it (a path value holding `/` or a
  dot segment, a control character in a header): 400, raised by `build_request` itself.
  The requests of backends that depend on no other are kept for the call; the others are
  rendered with stand-ins for the fields they take from other answers, so that only the
  caller's values are judged here (a backend's bad value still fails that backend, later);
- the route's deadline already passed: 504;
- a backend the answer needs that cannot be called now (its service has no instance, or
  every instance's breaker is open): 502, as the call would answer.
"""

from __future__ import annotations

import time
from typing import Any

from tollway.core.context import BackendOutcome, Context
from tollway.core.messages import BackendRequest
from tollway.errors import BadGateway, GatewayTimeout
from tollway.table.routes import CompiledBackend, CompiledRoute
from tollway.table.templates import TemplateValueError, json_template_refs
from tollway.upstream.call import BackendCaller, BackendFailure
from tollway.upstream.request import build_request

# What a field of another backend's answer is taken to be while only the caller's values are
# judged: a value every encoder accepts.
STAND_IN = "0"


def prepare(caller: BackendCaller, ctx: Context[CompiledRoute]) -> None:
    composed = ctx.route.compose != "proxy"
    for backend in ctx.route.backends:
        if backend.depends_on:
            _render(backend, ctx, stand_ins(backend), composed)
        else:
            request = _render(backend, ctx, {}, composed)
            if request is not None:
                ctx.prepared[backend.name] = request
    if time.monotonic() >= ctx.deadline:
        raise GatewayTimeout("the route's deadline passed before any backend was called")
    for backend in ctx.route.backends:
        if backend.required or not composed:
            _callable(caller, backend, ctx)


def _render(
    backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any], composed: bool
) -> BackendRequest | None:
    try:
        return build_request(backend, ctx, results, composed=composed)
    except TemplateValueError:
        return None  # not the caller's value: the call fails this backend, as before


def _callable(caller: BackendCaller, backend: CompiledBackend, ctx: Context[CompiledRoute]) -> None:
    try:
        instances = caller.instances(backend)
        if not any(caller.breakers.get(url, backend.breaker).permits for url in instances):
            raise BackendFailure("circuit open")
    except BackendFailure as failure:
        ctx.backends.append(BackendOutcome(backend.name, None, 0.0))
        raise BadGateway(f"backend {backend.name} failed: {failure.reason}") from None


def stand_ins(backend: CompiledBackend) -> dict[str, Any]:
    """Results in which every `{backend.field}` the backend's templates name is STAND_IN."""
    refs = [
        *backend.path.refs,
        *(ref for _, template in backend.query for ref in template.refs),
        *(ref for _, template in backend.headers for ref in template.refs),
        *json_template_refs(backend.body),
    ]
    results: dict[str, Any] = {}
    for ref in refs:
        if ref.backend is None:
            continue
        node = results.setdefault(ref.backend, {})
        for key in ref.path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node.setdefault(ref.path[-1], STAND_IN)
    return results
