"""Window arithmetic and the RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from tollway.config.models import Plan, Quota, Rate
from tollway.quota import limits


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("moment", "per", "key", "start", "end"),
    [
        ("2026-11-27T13:14:15", "day", "D2026-11-27", "2026-11-27T00:00:00", "2026-11-28T00:00:00"),
        ("2026-11-27T23:59:59.999", "day", "D2026-11-27", "2026-11-27T00:00:00", "2026-11-28T00:00:00"),
        ("2026-11-28T00:00:00", "day", "D2026-11-28", "2026-11-28T00:00:00", "2026-11-29T00:00:00"),
        ("2026-12-31T23:59:59", "month", "M2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("2028-02-10T00:00:00", "month", "M2028-02", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
    ],
)
def test_quota_periods_are_utc_calendar_periods(moment, per, key, start, end) -> None:
    period = limits.period(epoch(moment), per)
    assert (period.key, period.start, period.end) == (key, epoch(start), epoch(end))


def test_month_length_follows_the_calendar() -> None:
    assert limits.period(epoch("2028-02-10T00:00:00"), "month").seconds == 29 * 86400
    assert limits.period(epoch("2026-04-10T00:00:00"), "month").seconds == 30 * 86400


@pytest.mark.parametrize(
    ("rate", "length_ms"),
    [
        (Rate(limit=100, per="second"), 1000),
        (Rate(limit=5, per="second", burst=10), 2000),
        (Rate(limit=5, per="second", burst=7), 1400),
        (Rate(limit=3, per="second", burst=4), 1334),  # rounded up: never faster than 3/s
        (Rate(limit=60, per="minute"), 60_000),
    ],
)
def test_rate_window_length_keeps_the_long_run_rate(rate: Rate, length_ms: int) -> None:
    assert limits.window_ms(rate) == length_ms
    assert limits.burst(rate) * 1000 / length_ms <= rate.limit / limits.PER_SECONDS[rate.per]


def test_rate_windows_are_aligned_and_contiguous() -> None:
    rate = Rate(limit=5, per="second", burst=10)
    first = limits.window(1_000_000.999, rate)
    assert (first.start, first.end, first.attribute) == (1_000_000.0, 1_000_002.0, "r2000_500000")
    assert limits.window(1_000_001.999, rate) == first
    following = limits.window(1_000_002.0, rate)
    assert following.index == first.index + 1 and following.start == first.end


@pytest.mark.parametrize(("total", "shards"), [(10, 1), (10, 3), (101, 4), (64, 64), (1_000_000, 7)])
def test_shard_parts_add_up_to_the_whole(total: int, shards: int) -> None:
    parts = [limits.share(total, shards, s) for s in range(shards)]
    assert sum(parts) == total and max(parts) - min(parts) <= 1


def test_seconds_until_and_retry_after_round_up() -> None:
    assert limits.seconds_until(10.0, 12.0) == 2
    assert limits.seconds_until(10.1, 12.0) == 2
    assert limits.seconds_until(12.0, 12.0) == 0
    assert limits.retry_after(11.999, 12.0) == 1
    assert limits.retry_after(12.5, 12.0) == 1  # never 0: the caller must wait a little


def test_policy_field_lists_the_plan_as_written() -> None:
    day = limits.period(epoch("2026-11-27T10:00:00"), "day")
    field = limits.policy_field(Rate(limit=5, per="second", burst=10), Quota(limit=1000, per="day"), day)
    assert field == '"rate";q=5;w=1;tollway-burst=10, "quota";q=1000;w=86400'
    assert limits.policy_field(Rate(limit=60, per="minute"), None, None) == '"rate";q=60;w=60'


def test_limit_field_never_shows_a_negative_remaining() -> None:
    assert limits.limit_field([("rate", 3, 1), ("quota", -2, 3600)]) == '"rate";r=3;t=1, "quota";r=0;t=3600'


def test_counters_expire_a_day_after_their_period() -> None:
    day = limits.period(epoch("2026-11-27T10:00:00"), "day")
    assert limits.expires_at(day) == epoch("2026-11-29T00:00:00")
    rate_only = Plan(rate=Rate(limit=1, per="second"))
    assert limits.counter_period(epoch("2026-11-27T10:00:00"), rate_only).key == "D2026-11-27"


def test_shards_may_not_outnumber_the_smallest_limit() -> None:
    Plan.model_validate({"quota": {"limit": 64, "per": "day"}, "shards": 64})
    with pytest.raises(ValidationError, match="shards"):
        Plan.model_validate(
            {"rate": {"limit": 2, "per": "second"}, "quota": {"limit": 99, "per": "day"}, "shards": 3}
        )
