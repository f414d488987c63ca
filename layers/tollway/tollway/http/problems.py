"""The one place errors become `application/problem+json` (RFC 9457)."""

from __future__ import annotations

import orjson

from tollway.errors import GatewayError
from tollway.http.messages import Response

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
