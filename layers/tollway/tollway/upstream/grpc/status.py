"""gRPC status codes as HTTP answers (SPEC §7's table).

On a `proxy` route a service's own refusal (a status that maps to a 4xx) becomes a problem
of that status whose detail is the service's status message: the service chose to say it to
its caller. Every other status is the service failing (502), or the deadline (504): their
messages stay here, as a service's INTERNAL message may carry its internals.
"""

from __future__ import annotations

import re

from tollway.errors import BadGateway, GatewayError, GatewayTimeout

HTTP_STATUS = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "DEADLINE_EXCEEDED": 504,
}
# What the problem of a service's refusal is called, by HTTP status.
_REFUSALS = {
    400: ("bad-request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not Found"),
    409: ("conflict", "Conflict"),
    429: ("too-many-requests", "Too Many Requests"),
}
# A status message is the service's text: keep it one line, printable and short.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")
MAX_DETAIL = 512


def http_status(code: str) -> int:
    """The HTTP status a gRPC status (by name) answers as: 502 for any code not in the table."""
    return HTTP_STATUS.get(code, 502)


def server_fault(code: str) -> bool:
    """Whether the status says the service (or the way to it) failed: a circuit breaker
    counts it, and an idempotent call may be tried again."""
    return http_status(code) >= 500


class ServiceRefused(GatewayError):
    """A gRPC service's own refusal, as the HTTP status SPEC §7 maps its status to."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.slug, self.title = _REFUSALS[status]
        detail = _UNPRINTABLE.sub(" ", message).strip()[:MAX_DETAIL] or self.title
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        super().__init__(detail, headers=headers)


def status_problem(backend: str, code: str, message: str) -> GatewayError:
    """The problem a `proxy` route answers for a non-OK status."""
    status = http_status(code)
    if status == 504:
        return GatewayTimeout(f"backend {backend} did not answer in time")
    if status >= 500:
        # The code is ours to name; the message (an INTERNAL's, say) is the service's.
        return BadGateway(f"backend {backend} failed: gRPC status {code}")
    return ServiceRefused(status, message)
