"""Window arithmetic and the RateLimit header fields: pure functions of a plan and a clock.

Quota periods are calendar periods in UTC (a day, a month), aligned with billing.

Rate limit: a fixed window, aligned to the Unix epoch, of length
`W = per * burst / limit` (rounded up to the millisecond) admitting at most `burst`
requests (`limit` when there is no burst). The long-run rate never exceeds `limit` per
`per`; bursts up to `burst` pass at once. Boundary behaviour: the last instant of one
window and the first of the next may each admit `burst`, so any interval of length `T`
admits at most `burst * (ceil(T / W) + 1)` requests — 2x burst at a boundary, never more.
A fixed window is chosen because it is the only exact limiter DynamoDB can keep in the
same single conditional UpdateItem as the quota (see `tollway.quota.store`), and because a
rejected consumer is rejected for the rest of a known window, which a container can
remember without asking DynamoDB again.

Header fields follow draft-ietf-httpapi-ratelimit-headers-11 (May 2026): one
`RateLimit-Policy` item per limit (`q`, `w`; the rate item adds `tollway-burst`) and one
`RateLimit` item (`r` remaining, `t` seconds until the window resets). A route's `cost`
counts against the quota; the rate limit counts requests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.table.plans import Plan, Quota, Rate


PER_SECONDS = {"second": 1, "minute": 60}
# Counters outlive their window by a day: enough to inspect, short enough to cost nothing.
TTL_GRACE_S = 86_400


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar quota period in UTC."""

    key: str  # "D2026-11-27" or "M2026-11"; part of the counter item's key
    start: float  # epoch seconds
    end: float

    @property
    def seconds(self) -> int:
        return round(self.end - self.start)


@dataclass(frozen=True, slots=True)
class Window:
    """One fixed rate-limit window."""

    index: int  # windows since the epoch
    start: float
    end: float
    length_ms: int

    @property
    def attribute(self) -> str:
        """The counter item's attribute of this window: `r<length ms>_<index>`. The length is
        in the name because one consumer's plans (keys on two plans) can have windows of
        different lengths on one counter item: each plan's writes must know the other's
        windows from their own, and never take a live one for a stale one."""
        return window_attribute(self.length_ms, self.index)


def window_attribute(length_ms: int, index: int) -> str:
    return f"r{length_ms}_{index}"


_WINDOW = re.compile(r"r(?:(\d+)_)?(\d+)")


def is_window(name: str) -> bool:
    """Whether a counter item's attribute counts a rate window (`r<index>`: before the
    length was in the name)."""
    return _WINDOW.fullmatch(name) is not None


def window_over(name: str, now: float) -> bool:
    """Whether the window attribute `name` is older than its own previous window at `now`,
    so nothing will count in it again; a name without a length (older writers) always is."""
    found = _WINDOW.fullmatch(name)
    if found is None or found.group(1) is None:
        return True
    length = int(found.group(1))
    return int(found.group(2)) < int(now * 1000) // length - 1


def period(now: float, per: str) -> Period:
    """The UTC day or month containing `now`."""
    moment = datetime.fromtimestamp(now, UTC)
    if per == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Period(f"D{start:%Y-%m-%d}", start.timestamp(), (start + timedelta(days=1)).timestamp())
    if per == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        after = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return Period(f"M{start:%Y-%m}", start.timestamp(), after.timestamp())
    raise ValueError(f"unknown quota period {per!r}")


def counter_period(now: float, plan: Plan) -> Period:
    """The period a plan's counter item lives for: its quota period, or a day for rate-only plans."""
    return period(now, plan.quota.per if plan.quota is not None else "day")


def window_ms(rate: Rate) -> int:
    """Rounded up, so the long-run rate stays at or under `limit` per `per`."""
    return -(-PER_SECONDS[rate.per] * 1000 * burst(rate) // rate.limit)


def burst(rate: Rate) -> int:
    return rate.burst if rate.burst is not None else rate.limit


def window(now: float, rate: Rate) -> Window:
    length = window_ms(rate)
    index = int(now * 1000) // length
    return Window(index, index * length / 1000, (index + 1) * length / 1000, length)


def share(total: int, shards: int, shard: int) -> int:
    """Shard `shard`'s part of `total`; the parts add up to exactly `total`."""
    return total // shards + (1 if shard < total % shards else 0)


def seconds_until(now: float, end: float) -> int:
    """Whole seconds until `end`, rounded up: a client waiting that long finds it passed."""
    return max(0, math.ceil(end - now))


def retry_after(now: float, end: float) -> int:
    return max(1, seconds_until(now, end))


def expires_at(counter: Period) -> int:
    return int(counter.end) + TTL_GRACE_S


# ---- header fields -------------------------------------------------------------------


def policy_field(rate: Rate | None, quota: Quota | None, quota_period: Period | None) -> str:
    """`RateLimit-Policy`: the plan as written in plans.yaml."""
    items = []
    if rate is not None:
        item = f'"rate";q={rate.limit};w={PER_SECONDS[rate.per]}'
        if rate.burst is not None:
            item += f";tollway-burst={rate.burst}"
        items.append(item)
    if quota is not None and quota_period is not None:
        items.append(f'"quota";q={quota.limit};w={quota_period.seconds}')
    return ", ".join(items)


def limit_field(remaining: list[tuple[str, int, int]]) -> str:
    """`RateLimit`: (policy name, units remaining, seconds until reset) per limit."""
    return ", ".join(f'"{name}";r={max(0, r)};t={t}' for name, r, t in remaining)
