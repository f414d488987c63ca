"""The Lambda side of the ASGI app: Mangum, plus what Mangum cannot do for it.

- The event is read by `HttpApiEvent`, not Mangum's own reader: every field it uses is
  checked first, so a malformed event (no `requestContext.http`, `headers: null`,
  `body: 5`, a base64 body that is not base64 or not ASCII, a lone surrogate) is a 400
  problem, never an exception out of the handler (API Gateway's bare 500). The path is
  handed over as the event spells it (`raw_path`), not decoded first as Mangum does, so
  the app routes it exactly as it routes the same request under uvicorn
  (`routing.canonical_path`). The scheme is https: an HTTP API serves nothing else,
  and a caller's `X-Forwarded-Proto` does not say otherwise.
- Lambda refuses a response over 6 MB, and API Gateway turns that into a bare 500. The
  size that counts is the serialized result, after Mangum base64-encodes a binary body
  (x4/3), so it is measured here, on the result, and replaced by a 502 problem.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
from mangum.handlers import HTTPGateway

from tollway.core.headers import request_id
from tollway.core.problems import PROBLEM_TYPE, problem_response
from tollway.errors import BadGateway, BadRequest, GatewayError
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


class MalformedEvent(BadRequest):
    """The invocation is not a well-formed API Gateway HTTP API (v2) event."""


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"the event's {where} is not a string")
    return value


def _utf8(value: str, where: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise MalformedEvent(f"the event's {where} is not valid text") from None


class HttpApiEvent(HTTPGateway):
    """One HTTP API (payload 2.0) event, checked whole before the app sees any of it."""

    @classmethod
    def infer(cls, event: Any, context: Any, config: Any) -> bool:
        return True  # the router is invoked by its HTTP API only: anything else is malformed

    def __init__(self, event: Any, context: Any, config: Any) -> None:
        super().__init__(event, context, config)
        if not isinstance(event, dict) or event.get("version") != "2.0":
            raise MalformedEvent("the invocation is not an HTTP API (payload 2.0) event")
        context_ = event.get("requestContext")
        http = context_.get("http") if isinstance(context_, dict) else None
        if not isinstance(http, dict):
            raise MalformedEvent("the event has no requestContext.http")
        method = _text(http.get("method"), "method")
        path = _text(http.get("path"), "path")
        source_ip = _text(http.get("sourceIp"), "source address")
        fields = event.get("headers", {})
        if not isinstance(fields, dict):
            raise MalformedEvent("the event's headers are not an object")
        headers = {_text(k, "header name").lower(): _text(v, "header value") for k, v in fields.items()}
        cookies = event.get("cookies") or []
        if not isinstance(cookies, list):
            raise MalformedEvent("the event's cookies are not a list")
        if cookies:
            headers["cookie"] = "; ".join(_text(c, "cookie") for c in cookies)
        query = _text(event.get("rawQueryString", ""), "query")
        self._body = self._read_body(event)
        self._scope = {
            "type": "http",
            "method": _utf8(method, "method").decode(),
            "http_version": "1.1",
            "headers": [(_utf8(k, "header name"), _utf8(v, "header value")) for k, v in headers.items()],
            "path": unquote(path),
            "raw_path": _utf8(path, "path"),
            "root_path": "",
            "scheme": "https",
            "query_string": _utf8(query, "query"),
            "server": (headers.get("host", "mangum"), 443),
            "client": (source_ip, 0),
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "aws.event": event,
            "aws.context": context,
        }

    @staticmethod
    def _read_body(event: dict[str, Any]) -> bytes:
        body = event.get("body")
        encoded = event.get("isBase64Encoded", False)
        if not isinstance(encoded, bool):
            raise MalformedEvent("the event's isBase64Encoded is not a boolean")
        if body is None:
            return b""
        body = _text(body, "body")
        if not encoded:
            return _utf8(body, "body")
        try:
            return base64.b64decode(body.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise BadRequest("the request body is not valid base64") from None

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def scope(self) -> dict[str, Any]:
        return self._scope

    def __call__(self, response: dict[str, Any]) -> dict[str, Any]:
        # Header values are bytes (a backend's may be any latin-1 text); Mangum reads them
        # as UTF-8 and would raise on the others: hand it the same text in UTF-8.
        response["headers"] = [
            (k, v.decode("latin-1").encode()) for k, v in response["headers"]
        ]
        return super().__call__(response)


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
    mangum = Mangum(
        app,
        lifespan="off",
        text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, PROBLEM_TYPE],
        custom_handlers=[HttpApiEvent],
    )

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            result = mangum(event, context)
        except GatewayError as error:
            return problem_result(error, _event_request_id(event))
        if _too_large(result):
            rid = (result.get("headers") or {}).get("x-request-id") or _event_request_id(event)
            logger.warning("response over the Lambda payload limit", extra={"request_id": rid})
            return problem_result(BadGateway("the backend's response is too large to return"), rid)
        return result

    return handler
