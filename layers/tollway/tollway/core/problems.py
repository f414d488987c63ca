"""The one place errors become `application/problem+json` (RFC 9457)."""

from __future__ import annotations

import orjson

from tollway.core.messages import Response
from tollway.errors import GatewayError

PROBLEM_TYPE = "application/problem+json"


def problem_response(error: GatewayError, request_id: str) -> Response:
    body = orjson.dumps(
        {
            "type": error.type,
            "title": error.title,
            "status": error.status,
            "detail": error.detail,
            "request_id": request_id,
            **error.extensions,
        }
    )
    headers = [("content-type", PROBLEM_TYPE), *error.headers.items()]
    return Response(error.status, headers, body)
