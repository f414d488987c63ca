"""The Lambda side of the ASGI app: Mangum, plus the two answers Mangum cannot give.

- Lambda refuses a response over 6 MB, and API Gateway turns that into a bare 500. The
  size that counts is the serialized result, after Mangum base64-encodes a binary body
  (x4/3), so it is measured here, on the result, and replaced by a 502 problem.
- Mangum decodes a base64 body before the app runs and raises on a malformed one; that
  is the caller's fault, so it is a 400 problem, not an exception.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from tollway.errors import BadGateway, BadRequest, GatewayError
from tollway.http.headers import request_id
from tollway.http.problems import PROBLEM_TYPE, problem_response
from tollway.observability import logger

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

# Lambda's limit on a synchronous response, and room for what the runtime wraps around it.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
_MARGIN = 1024
# Below this a result cannot come near the limit, so it is not measured.
_MEASURE_FROM = LAMBDA_RESPONSE_LIMIT // 2


def problem_result(error: GatewayError, rid: str) -> dict[str, Any]:
    response = problem_response(error, rid)
    headers = dict(response.headers)
    headers["x-request-id"] = rid
    headers["content-type"] = PROBLEM_TYPE
    return {
        "statusCode": response.status,
        "headers": headers,
        "body": response.body.decode(),
        "isBase64Encoded": False,
    }


def _event_request_id(event: dict[str, Any]) -> str:
    headers = event.get("headers") if isinstance(event, dict) else None
    offered = headers.get("x-request-id") if isinstance(headers, dict) else None
    return request_id(offered if isinstance(offered, str) else None)


def _too_large(result: dict[str, Any]) -> bool:
    body = result.get("body") or ""
    if len(body) < _MEASURE_FROM:
        return False
    return len(json.dumps(result)) > LAMBDA_RESPONSE_LIMIT - _MARGIN


def lambda_handler(app: Any) -> LambdaHandler:
    # Problem details are text too: without this Mangum would base64 them.
    mangum = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, PROBLEM_TYPE])

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            result = mangum(event, context)
        except binascii.Error:
            return problem_result(
                BadRequest("the request body is not valid base64"), _event_request_id(event)
            )
        if _too_large(result):
            rid = (result.get("headers") or {}).get("x-request-id") or _event_request_id(event)
            logger.warning("response over the Lambda payload limit", extra={"request_id": rid})
            return problem_result(BadGateway("the backend's response is too large to return"), rid)
        return result

    return handler
