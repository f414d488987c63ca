"""The one error of the AWS layer, whichever service and whichever client raised it.

    AwsError(code, body, status)
        code: the `__type` after '#'   ConditionalCheckFailedException, ThrottlingException,
                                       QueueDoesNotExist, AccessDenied, ...
              "InternalServerError"    an HTTP 5xx without a `__type`
              "BadResponse"            any other answer that is not the service's JSON
              "ConnectionError"        could not connect (in time), or the connection broke
              "Timeout"                connected, but no answer within the time left
              "NoCredentials"          the credential chain found nothing

`retryable` says whether the same call may succeed if sent again: throttling, a 5xx or a
broken connection. Never a failed condition or another client error (the answer would be
the same), nor a timeout (a second wait would spend the caller's own deadline).
"""

from __future__ import annotations

from typing import Any

THROTTLING = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
    }
)


class AwsError(Exception):
    """The service refused the call or could not be asked; `body` is its JSON answer, if any."""

    def __init__(self, code: str, body: dict[str, Any] | None = None, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.body = body if body is not None else {}
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.code in THROTTLING or self.code == "ConnectionError" or (self.status or 0) >= 500
