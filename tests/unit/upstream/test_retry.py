from __future__ import annotations

from tollway.config.models import Retry
from tollway.upstream.retry import attempts_for, backoff_s


def test_only_idempotent_methods_are_tried_again():
    retry = Retry(attempts=3)
    assert [attempts_for(m, retry) for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")] == [3] * 5
    assert attempts_for("POST", retry) == 1 and attempts_for("PATCH", retry) == 1


def test_backoff_is_jittered_and_grows():
    retry = Retry(backoff_ms=100)
    assert backoff_s(retry, 1, lambda: 1.0) == 0.1
    assert backoff_s(retry, 3, lambda: 1.0) == 0.4
    assert backoff_s(retry, 3, lambda: 0.25) == 0.1
    assert backoff_s(retry, 1, lambda: 0.0) == 0.0
