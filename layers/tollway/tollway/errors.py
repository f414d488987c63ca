"""Errors that reach a caller, each carrying its HTTP status and problem type.

GatewayError
 ├── BadRequest            400
 ├── Unauthorized          401  (with a WWW-Authenticate challenge)
 ├── Forbidden             403
 ├── NotFound              404
 ├── MethodNotAllowed      405  (with Allow)
 ├── RequestTimeout        408  (the caller's body did not arrive in time)
 ├── PayloadTooLarge       413
 ├── TooManyRequests       429  (with Retry-After)
 ├── BadGateway            502
 ├── ServiceUnavailable    503
 │    └── IssuerUnavailable     503  (a JWT issuer's keys cannot be had in time)
 └── GatewayTimeout        504

Steps raise these; `tollway.core.problems.problem_response` is the one place that turns
them into `application/problem+json`. Anything else that escapes is a 500 with no detail.
"""

from __future__ import annotations

PROBLEM_BASE = "https://tollway.dev/problems/"


class GatewayError(Exception):
    status: int = 500
    slug: str = "internal"
    title: str = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers: dict[str, str] = dict(headers or {})
        # RFC 9457 extension members, e.g. the JSON pointer of an invalid field.
        self.extensions: dict[str, object] = {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequest(GatewayError):
    status, slug, title = 400, "bad-request", "Bad Request"


class Unauthorized(GatewayError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, *, challenge: str = "Bearer") -> None:
        super().__init__(detail, headers={"www-authenticate": challenge})


class Forbidden(GatewayError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(GatewayError):
    status, slug, title = 404, "not-found", "Not Found"


class MethodNotAllowed(GatewayError):
    status, slug, title = 405, "method-not-allowed", "Method Not Allowed"

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(f"allowed methods: {', '.join(allowed)}", headers={"allow": ", ".join(allowed)})


class RequestTimeout(GatewayError):
    status, slug, title = 408, "request-timeout", "Request Timeout"


class PayloadTooLarge(GatewayError):
    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class TooManyRequests(GatewayError):
    status, slug, title = 429, "too-many-requests", "Too Many Requests"

    def __init__(
        self, detail: str, *, retry_after: int, limit: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail, headers={**(headers or {}), "retry-after": str(retry_after)})
        self.limit = limit
        self.retry_after = retry_after


class BadGateway(GatewayError):
    status, slug, title = 502, "bad-gateway", "Bad Gateway"


class ServiceUnavailable(GatewayError):
    status, slug, title = 503, "service-unavailable", "Service Unavailable"


class IssuerUnavailable(ServiceUnavailable):
    slug, title = "issuer-unavailable", "Token Issuer Unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"retry-after": "1"})


class GatewayTimeout(GatewayError):
    status, slug, title = 504, "gateway-timeout", "Gateway Timeout"
