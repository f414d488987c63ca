"""`compose: proxy`: one backend, status, headers (minus hop-by-hop) and body passed through.

A backend's 5xx becomes a 502 naming the backend (its body, possibly a stack trace, never
reaches the caller). Every other status, a 4xx included, is the backend's own answer and
passes through with its body and its headers but those `to_caller` refuses (hop-by-hop,
framing, the backend's software and hops, the gateway's `tollway-` namespace): a
`Set-Cookie` or a custom header of a backend's 4xx reaches the caller as on a 2xx.
A 2xx event stream (text/event-stream) passes through as it arrives, chunk by chunk,
until the route's deadline.
"""

from __future__ import annotations

import time

from tollway.core.context import BackendOutcome, Context
from tollway.core.headers import connection_tokens, to_caller
from tollway.core.messages import Response
from tollway.errors import BadGateway, GatewayTimeout
from tollway.table.routes import CompiledRoute
from tollway.upstream.call import Answer, BackendCaller, BackendFailure
from tollway.upstream.request import build_request


async def proxy(caller: BackendCaller, ctx: Context[CompiledRoute]) -> tuple[Response, Answer]:
    backend = ctx.route.backends[0]
    request = ctx.prepared.get(backend.name) or build_request(backend, ctx, {}, composed=False)
    started = time.monotonic()
    status: int | None = None
    try:
        answer = await caller.send(
            backend,
            request,
            ctx.deadline,
            ctx.route.max_response_bytes,
            raw=True,
            stream=True,
            on_call=ctx.call_started,
        )
        status = answer.status
    except BackendFailure as failure:
        if failure.timed_out:
            raise GatewayTimeout(f"backend {backend.name} did not answer in time") from failure
        raise BadGateway(f"backend {backend.name} failed: {failure.reason}") from failure
    finally:
        ctx.backends.append(BackendOutcome(backend.name, status, (time.monotonic() - started) * 1000))
    if answer.status >= 500:
        raise BadGateway(f"backend {backend.name} failed: it answered {answer.status}")
    named = connection_tokens(answer.headers.get("connection"))
    out = [(k, v) for k, v in answer.headers.multi_items() if to_caller(k) and k not in named]
    return Response(answer.status, out, answer.body, stream=answer.stream), answer
