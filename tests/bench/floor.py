"""The naive floor: Starlette + a default httpx client passing every request to one backend.

What a first Python gateway looks like; the bench runs it under Mangum in-process and under
uvicorn, against the same backend as Tollway, in the same run.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def naive_app(backend: str) -> Starlette:
    client = httpx.AsyncClient()  # module-level in a real function: one per container

    async def passthrough(request: Request) -> Response:
        answer = await client.request(
            request.method,
            backend + request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers={"accept": request.headers.get("accept", "*/*")},
        )
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", passthrough, methods=methods)])
