"""UsageTable's key layout (see UsageTable in template.yaml): the one place it is written and read.

    pk                        sk                            what
    CONSUMER#<consumer>       DAY#<YYYY-MM-DD>              a consumer's totals for a day
    CONSUMER#<consumer>       DAY#<YYYY-MM-DD>#ROUTE#<id>   ... for one route
    CONSUMER#<consumer>       MONTH#<YYYY-MM>[#ROUTE#<id>]  the same per month
    PERIOD#<YYYY-MM[-DD]>     CONSUMER#<consumer>           who had usage in a period
    EVENT#<event id>          EVENT                         an event already recorded (dedupe)
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
