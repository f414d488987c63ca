"""When a failed backend call may be tried again, and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.table.routes import Retry


# RFC 9110 §9.2.2: repeating these has the same effect as sending them once.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Answers that say "try again" rather than "this request is wrong".
RETRY_STATUSES = frozenset({500, 502, 503, 504})


def attempts_for(method: str, retry: Retry) -> int:
    return retry.attempts if method in IDEMPOTENT else 1


def backoff_s(retry: Retry, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Full jitter (uniform in [0, base * 2^(attempt-1)]): retries of many callers spread out."""
    return rng() * retry.backoff_ms * (2 ** (attempt - 1)) / 1000
