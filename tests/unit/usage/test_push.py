"""The push's pure parts: identifiers, timestamps Stripe takes, which months the schedule
pushes, and how Stripe's answers are read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from tollway.usage.push import (
    MARGIN_S,
    STRIPE_MAX_AGE_S,
    event_timestamp,
    identifier,
    month_bounds,
    months_to_push,
)
from tollway.usage.stripe_meter import check_api_base, is_duplicate, network_cause, one_line


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_month_bounds_cover_december_and_leap_february():
    assert month_bounds("2026-12") == (ts(2026, 12, 1), ts(2027, 1, 1))
    assert month_bounds("2028-02") == (ts(2028, 2, 1), ts(2028, 3, 1))


@pytest.mark.parametrize(
    ("now", "stamp"),
    [(ts(2026, 11, 20, 12), ts(2026, 11, 20, 12)),          # during the month: now
     (ts(2026, 12, 3), ts(2026, 12, 1) - 1),                # after: the month's last second
     (ts(2027, 1, 4, 22), ts(2026, 12, 1) - 1),              # 34 days 22 h after: still taken
     (ts(2027, 1, 4, 23, 0, 1), None),                       # within the hour of margin: refused
     (ts(2027, 2, 1), None)],
)  # fmt: skip
def test_event_timestamps_stay_inside_the_month_and_stripes_35_days(now, stamp):
    assert event_timestamp("2026-11", now) == (int(stamp) if stamp else None)


@given(st.floats(ts(2020, 1, 1), ts(2035, 1, 1)))
def test_a_timestamp_is_in_its_month_and_never_older_than_stripe_takes(now):
    month = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m")
    assert len(months_to_push(now)) == 2
    for m in months_to_push(now):
        stamp = event_timestamp(m, now)
        start, end = month_bounds(m)
        assert stamp is not None and start <= stamp < end
        assert now - STRIPE_MAX_AGE_S + MARGIN_S <= stamp <= now
    assert months_to_push(now)[-1] == month


def test_the_schedule_pushes_last_month_and_this_one():
    assert months_to_push(ts(2026, 12, 2)) == ["2026-11", "2026-12"]
    assert months_to_push(ts(2027, 1, 1)) == ["2026-12", "2027-01"]
    assert months_to_push(ts(2027, 3, 31, 23, 59, 59)) == ["2027-02", "2027-03"]


def test_identifiers_are_deterministic_short_and_separate_per_deployment():
    a = identifier("tollway-UsageTable-1A", "acme|x" * 40, "pro", "2026-11", 12)
    assert a == identifier("tollway-UsageTable-1A", "acme|x" * 40, "pro", "2026-11", 12)
    assert a.startswith("tollway-2026-11-") and a.endswith("-12") and len(a) <= 100
    others = {
        identifier("tollway-UsageTable-2B", "acme|x" * 40, "pro", "2026-11", 12),
        identifier("tollway-UsageTable-1A", "acme|x" * 40, "free", "2026-11", 12),
        identifier("tollway-UsageTable-1A", "acme|x" * 40, "pro", "2026-12", 12),
        identifier("tollway-UsageTable-1A", "acme|x" * 40, "pro", "2026-11", 13),
        identifier("tollway-UsageTable-1A", "acme", "pro", "2026-11", 12),
    }
    assert a not in others and len(others) == 5


@pytest.mark.parametrize(
    ("url", "ok"),
    [("https://api.stripe.com", True), ("http://127.0.0.1:12111", True), ("http://localhost:1", True),
     ("http://[::1]:9", True), ("http://stripe.example.com", False), ("ftp://127.0.0.1", False)],
)  # fmt: skip
def test_a_plain_http_api_base_only_on_loopback(url, ok):
    if ok:
        assert check_api_base(url + "/") == url
    else:
        with pytest.raises(ValueError, match="must be https"):
            check_api_base(url)


def invalid(message: str, status: int = 400) -> stripe.InvalidRequestError:
    return stripe.InvalidRequestError(message, None, http_status=status)


def test_only_stripes_duplicate_answer_naming_our_identifier_is_a_duplicate():
    ours = "tollway-2026-11-abc-0"
    assert is_duplicate(invalid(f"An event already exists with identifier {ours}."), ours)
    assert not is_duplicate(invalid("An event already exists with identifier tollway-2026-11-abc-1."), ours)
    assert not is_duplicate(invalid(f"No such customer: {ours}"), ours)
    assert not is_duplicate(invalid(f"An event already exists with identifier {ours}.", 404), ours)


def test_error_lines_are_one_line_and_carry_no_secret_key():
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("bad key sk_live_51Habc123XYZ and rk_test_9zz") == "bad key sk_live_*** and rk_test_***"
    assert len(one_line("x" * 1000)) == 300
    error = stripe.APIConnectionError(
        "Unexpected error communicating with Stripe.  If this problem persists,\nlet us know at "
        "support@stripe.com.\n\n(Network error: ConnectionError: HTTPConnectionPool(host='127.0.0.1',"
        " port=9): Max retries exceeded)"
    )
    assert network_cause(error) == (
        "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded"
    )
