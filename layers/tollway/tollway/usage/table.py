"""UsageTable's key layout (see UsageTable in template.yaml): the one place it is written and read.

    pk                        sk                            what
    CONSUMER#<consumer>       DAY#<YYYY-MM-DD>#ROUTE#<id>   a consumer's totals for a day on a route
    CONSUMER#<consumer>       MONTH#<YYYY-MM>               ... for a month (all routes)
    CONSUMER#<consumer>       DAY#<YYYY-MM-DD>,             written before issue 19 (events
                              MONTH#<YYYY-MM>#ROUTE#<id>    recorded since write the two above)
    PERIOD#<YYYY-MM[-DD]>     CONSUMER#<consumer>           who had usage in a period
    EVENT#<event id>          EVENT                         a bare event already recorded (dedupe)
    MESSAGE#<producer>#<n>    MESSAGE                       which messages of that producer, numbered
                                                            64n..64n+63 (their offsets), were
                                                            recorded (dedupe)
    CONSUMER#<consumer>       COUNTER#<counter>#<shard>     a copy of a quota counter (true-up)
    CONSUMER#<consumer>       STRIPE#CUSTOMER               the consumer's Stripe customer id
    CONSUMER#<consumer>       STRIPE#PUSH#<YYYY-MM>#PLAN#<plan>  units pushed to Stripe (usage/push.py)

Ids come last in each key, after a fixed prefix, so any id (with `#` in it too) reads back
as it was written: readers strip the prefix, never split.

A totals item also keeps each plan's share of its counters in top-level attributes named
`plan#<plan>#<counter>` (DynamoDB's ADD works only on top-level attributes): the plan comes
between a fixed prefix and the counter, which holds no `#`.
"""

from __future__ import annotations

import re
from typing import Any

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$")
DEDUPE_SK = "EVENT"
_ROUTE = "#ROUTE#"
_CONSUMER = "CONSUMER#"

Key = dict[str, dict[str, str]]


def period_sk(period: str) -> str:
    """`2026-11` -> `MONTH#2026-11`, `2026-11-27` -> `DAY#2026-11-27`; raises ValueError."""
    if not _PERIOD.match(period):
        raise ValueError(f"period must be YYYY-MM or YYYY-MM-DD, not {period!r}")
    return ("DAY#" if len(period) == 10 else "MONTH#") + period


def consumer_pk(consumer: str) -> str:
    return _CONSUMER + consumer


def totals_key(consumer: str, period: str, route_id: str | None = None) -> Key:
    sk = period_sk(period) + (_ROUTE + route_id if route_id is not None else "")
    return {"pk": {"S": consumer_pk(consumer)}, "sk": {"S": sk}}


def day_route_of(sk: str) -> tuple[str, str] | None:
    """(day, route id) of a day-per-route totals item's sort key; None for any other."""
    if not sk.startswith("DAY#") or not sk[14:].startswith(_ROUTE):
        return None
    return sk[4:14], sk[14 + len(_ROUTE) :]


def route_of(sk: str, period: str) -> str | None:
    """The route id of a per-route totals item of `period`; None for the period's own totals."""
    prefix = period_sk(period) + _ROUTE
    return sk[len(prefix) :] if sk.startswith(prefix) else None


def index_key(period: str, consumer: str) -> Key:
    return {"pk": {"S": index_pk(period)}, "sk": {"S": _CONSUMER + consumer}}


def index_pk(period: str) -> str:
    period_sk(period)
    return f"PERIOD#{period}"


def indexed_consumer(item: dict[str, Any]) -> str:
    return item["sk"]["S"].removeprefix(_CONSUMER)


def dedupe_key(event_id: str) -> Key:
    return {"pk": {"S": f"EVENT#{event_id}"}, "sk": {"S": DEDUPE_SK}}


_PLAN_ATTRIBUTE = "plan#"


def plan_attribute(plan: str, counter: str) -> str:
    """The attribute of a totals item that counts `counter` for one plan: `plan#pro#units`."""
    return f"{_PLAN_ATTRIBUTE}{plan}#{counter}"


def parse_plan_attribute(name: str) -> tuple[str, str] | None:
    """`plan#pro#units` -> ("pro", "units"); None for any other attribute."""
    if not name.startswith(_PLAN_ATTRIBUTE) or "#" not in name[len(_PLAN_ATTRIBUTE) :]:
        return None
    plan, _, counter = name[len(_PLAN_ATTRIBUTE) :].rpartition("#")
    return plan, counter


def customer_key(consumer: str) -> Key:
    return {"pk": {"S": consumer_pk(consumer)}, "sk": {"S": "STRIPE#CUSTOMER"}}


def month(period: str) -> str:
    """`period` if it is a month (YYYY-MM); raises ValueError."""
    if len(period) != 7 or not _PERIOD.match(period):
        raise ValueError(f"period must be a month (YYYY-MM), not {period!r}")
    return period


def push_key(consumer: str, period: str, plan: str) -> Key:
    return {"pk": {"S": consumer_pk(consumer)}, "sk": {"S": f"STRIPE#PUSH#{month(period)}#PLAN#{plan}"}}


# Message numbers per dedupe record. It holds their offsets (0-63, at most 2 bytes each): a
# record stays far under 1 KB (write units are per KB), and the condition that checks a
# batch's numbers against it far under DynamoDB's 4 KB for an expression.
MESSAGES_PER_RECORD = 64


def message_dedupe_key(producer: str, seq: int) -> Key:
    """The record of which messages of `producer` in the block of `seq` were recorded.
    Producer ids hold no '#' (tollway.usage.events)."""
    return {"pk": {"S": f"MESSAGE#{producer}#{seq // MESSAGES_PER_RECORD}"}, "sk": {"S": "MESSAGE"}}


def counter_copy_key(consumer: str, counter: str) -> Key:
    """A true-up's copy of the quota counter item `counter` ("D2026-11-27#0", period#shard)."""
    return {"pk": {"S": consumer_pk(consumer)}, "sk": {"S": COUNTER_PREFIX + counter}}


COUNTER_PREFIX = "COUNTER#"


def counter_copy_prefixes(period: str) -> list[str]:
    """Sort-key prefixes of the counter copies that can count towards `period`: a day's daily
    counters; a month's monthly counters and its days' daily ones."""
    period_sk(period)
    if len(period) == 10:
        return [f"{COUNTER_PREFIX}D{period}#"]
    return [f"{COUNTER_PREFIX}M{period}#", f"{COUNTER_PREFIX}D{period}-"]
