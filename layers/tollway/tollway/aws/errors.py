"""The one error of the AWS layer, whichever service and whichever client raised it.

    AwsError(code, body, status, *, shape, fault, date)
        code: the service's error code     ConditionalCheckFailedException, ThrottlingException,
                                           ResourceNotFoundException, AccessDenied, ...;
                                           a query-compatible service's (SQS's) from its
                                           `x-amzn-query-error` header, as botocore's Error.Code:
                                           AWS.SimpleQueueService.NonExistentQueue, ...
              "InternalServerError"        an HTTP 5xx without a code
              "BadResponse"                any other answer that is not the service's JSON
              "CRC32Mismatch"              DynamoDB's answer is not the one it checksummed
                                           (`x-amz-crc32`): damaged on the way, not to be read
              "ConnectionError"            could not connect (in time), or the connection broke
              "Timeout"                    connected, but no answer within the time left
              "NoCredentials"              the credential chain found nothing
        shape: the `__type` after '#' when the header gave `code` (QueueDoesNotExist: the
               exception botocore raises); else the same as `code`
        fault: "Sender" or "Receiver" when the header said so
        date:  the answer's Date header: what `tollway.aws.clock` corrects a skewed clock by

`retryable` says whether the same call may succeed if sent again: throttling, a 5xx, a
broken connection or a damaged answer. Never a failed condition or another client error (the
answer would be the same), nor a timeout (a second wait would spend the caller's own
deadline). A refused signature is retried only when the clock was wrong (`AwsClock.corrects`).
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
CRC32_MISMATCH = "CRC32Mismatch"
TRANSIENT = frozenset({"ConnectionError", CRC32_MISMATCH})


class AwsError(Exception):
    """The service refused the call or could not be asked; `body` is its JSON answer, if any."""

    def __init__(
        self,
        code: str,
        body: dict[str, Any] | None = None,
        status: int | None = None,
        *,
        shape: str | None = None,
        fault: str | None = None,
        date: str | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.body = body if body is not None else {}
        self.status = status
        self.shape = shape or code
        self.fault = fault
        self.date = date

    @property
    def retryable(self) -> bool:
        return (
            self.code in THROTTLING
            or self.shape in THROTTLING
            or self.code in TRANSIENT
            or (self.status or 0) >= 500
        )


def applied(error: AwsError) -> bool:
    """Whether a call that failed was carried out all the same: the service answered 200 and the
    answer was damaged on its way (its body cannot be read, its status can)."""
    return error.code == CRC32_MISMATCH and error.status == 200
