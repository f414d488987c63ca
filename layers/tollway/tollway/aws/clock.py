"""The time AWS requests are signed with: the container's clock, corrected by AWS's own.

A SigV4 signature carries its time (`x-amz-date`), and AWS refuses one too far from its own
clock (DynamoDB: "InvalidSignatureException: Signature expired ... - 5 min"; other services:
RequestTimeTooSkewed, RequestExpired, ...). A container whose clock drifted would then fail
every call until it is replaced. botocore does not correct this (it reads the Date header
only for its retry TTL); the AWS SDKs for Java, JavaScript and Go do, and `AwsClock` does
what they do: after a refused signature whose answer's `Date` is five minutes or more away
from the signing clock, adopt the difference as an offset, keep it for the container's later
calls (every lean caller of the container shares one clock), and retry the call once.

The evidence is the answer's Date, never the message's text: a refused signature from a
clock that agrees with AWS's is a wrong key, and is not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tollway.aws.errors import AwsError

# The codes AWS answers a signature with when it doubts its time (the AWS SDKs' list).
CLOCK_SKEW = frozenset(
    {
        "RequestTimeTooSkewed",
        "RequestExpired",
        "RequestInTheFuture",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)
# Closer than this, the clock is not what AWS refused (the SDKs' threshold, and DynamoDB's).
SKEW_S = 300.0


def http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP Date (RFC 9110, IMF-fixdate and the obsolete forms), or None."""
    from email.utils import mktime_tz, parsedate_tz  # only after a refusal: not on every call

    parsed = parsedate_tz(value)
    return float(mktime_tz(parsed)) if parsed is not None else None


class AwsClock:
    """`clock()`: seconds since the epoch to sign with; `time`: the container's clock."""

    def __init__(self, time: Callable[[], float] = time.time) -> None:
        self.time = time
        self.offset = 0.0

    def __call__(self) -> float:
        return self.time() + self.offset

    def corrects(self, error: AwsError) -> bool:
        """Whether `error` was a refused signature from a clock AWS disagrees with; if so, the
        clock now agrees with AWS's (for every later call too) and the call deserves one more try."""
        if error.code not in CLOCK_SKEW and error.shape not in CLOCK_SKEW:
            return False
        server = http_date(error.date) if error.date else None
        if server is None or abs(server - self()) < SKEW_S:
            return False
        self.offset = server - self.time()
        return True
