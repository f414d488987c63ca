"""The true-up: copy the quota counters into UsageTable, so that no bill depends on an event arriving.

An event lives in its router's memory from the response until the next flush: a process
killed outright (SIGKILL under uvicorn) or a Lambda environment that dies between the
response and its extension's flush (timeout, out of memory) takes it along, and no log
line is written. The quota counter does not lose it: admission counted the request's units
in DynamoDB before any backend was called (tollway.quota.store), and a metered request's
settle corrects them after the answer. The counter is the exact, durable record of what was
admitted; the events say on which routes, when and at what plan.

So billing takes the units from both. Each run of the true-up scans QuotaTable and, for
each counter item still live (before its `expires_at`), writes its `used` into a copy,
`CONSUMER#<c> / COUNTER#<counter>#<shard>`, when the copy differs, together with the plan
the counter counted last (admission keeps it on the item; for a counter written before it
did, the plan the consumer's totals for that month name) and its price (read here, from the
config). A consumer whose every event was lost is still billed at its plan's price.
A copy is set, never added to: runs that overlap, or repeat, change nothing; a copy never
goes back to an older reading (`seen_at`). Counters expire a day after their period ends;
their copies stay, the period's last word.

Reading (tollway.usage.report): a period's `counted` units are the copies that count
towards it (a day: its daily counters; a month: its monthly counters and its days' daily
ones), and what is billed is `max(attributed, counted)`: the units the events attributed
to routes, plus `unattributed_units` = counted - attributed when events are missing (lost,
or still on their way), priced at the latest copy's plan. An event that arrives late is
attributed and the difference shrinks by as much: nothing is billed twice. Requests
admitted without a counter (a route failing open while DynamoDB is down) are billed from
their events, as before.

It runs by itself: on AWS as `UsageTrueUpFunction` every 5 minutes (template.yaml); under
`tollway dev` in the usage function's process every few seconds (tollway.dev.demo).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollway.observability import logger
from tollway.quota.store import counts_towards, parse_counter_pk
from tollway.settings import Settings
from tollway.usage import table
from tollway.usage.billing import Price

BATCH_GET = 100  # BatchGetItem's limit of keys per call


@dataclass(frozen=True, slots=True)
class Counter:
    consumer: str
    name: str  # "<period>#<shard>", e.g. "D2026-11-27#0"
    used: int
    plan: str | None = None  # the plan the counter counted last (counters written before: None)

    @property
    def period(self) -> str:
        """The calendar period the counter counts: "2026-11-27" or "2026-11"."""
        return self.name.split("#", 1)[0][1:]


@dataclass(slots=True)
class TrueUpResult:
    counters: int = 0
    written: int = 0
    unpriced: int = 0  # copies whose consumer has no plan on record for the period


def live_counters(dynamodb: Any, quota_table: str, now: float) -> Iterator[Counter]:
    """Every counter item of QuotaTable not yet past its expiry, as it is now."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=quota_table, ConsistentRead=True)
    for page in pages:
        for item in page["Items"]:
            if "used" not in item:
                continue
            if "expires_at" in item and float(item["expires_at"]["N"]) <= now:
                continue  # expired, not yet deleted: its copy already holds its last value
            try:
                period, shard, consumer = parse_counter_pk(item["pk"]["S"])
            except ValueError:
                continue
            plan = item.get("plan", {}).get("S") or None
            yield Counter(consumer, f"{period}#{shard}", int(item["used"]["N"]), plan)


class TrueUp:
    def __init__(
        self,
        dynamodb: Any,
        usage_table: str,
        quota_table: str,
        prices: Mapping[str, Price],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.dynamodb = dynamodb
        self.usage_table = usage_table
        self.quota_table = quota_table
        self.prices = prices
        self.now = now

    def run(self) -> TrueUpResult:
        seen_at = self.now()
        result = TrueUpResult()
        counters = list(live_counters(self.dynamodb, self.quota_table, seen_at))
        result.counters = len(counters)
        for start in range(0, len(counters), BATCH_GET):
            chunk = counters[start : start + BATCH_GET]
            copies = self._copies(chunk)
            for counter in chunk:
                copy = copies.get((counter.consumer, counter.name))
                if copy is not None and _same(copy, counter):
                    continue
                if self._write(counter, copy, seen_at, result):
                    result.written += 1
        if result.written:
            logger.info(
                "usage true-up",
                extra={"counters": result.counters, "written": result.written, "unpriced": result.unpriced},
            )
        return result

    def _copies(self, counters: list[Counter]) -> dict[tuple[str, str], dict[str, Any]]:
        keys = [table.counter_copy_key(c.consumer, c.name) for c in counters]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request = {self.usage_table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            answer = self.dynamodb.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(self.usage_table, []):
                consumer = item["pk"]["S"].removeprefix("CONSUMER#")
                found[(consumer, item["sk"]["S"].removeprefix(table.COUNTER_PREFIX))] = item
            request = answer.get("UnprocessedKeys") or {}
        return found

    def _write(
        self, counter: Counter, copy: dict[str, Any] | None, seen_at: float, result: TrueUpResult
    ) -> bool:
        plan = counter.plan or self._plan(counter)
        price = self.prices.get(plan) if plan else None
        if price is None:
            result.unpriced += 1
            logger.warning(
                "usage true-up: no priced plan on record for the counter's period",
                extra={"consumer_id": counter.consumer, "counter": counter.name, "plan": plan},
            )
        item = {
            **table.counter_copy_key(counter.consumer, counter.name),
            "used": {"N": str(counter.used)},
            "seen_at": {"N": repr(seen_at)},
            "plan": {"S": plan or ""},
            "micros_per_1000": {"N": str(price.micros_per_1000 if price else 0)},
            "currency": {"S": price.currency if price else "USD"},
        }
        try:
            self.dynamodb.put_item(
                TableName=self.usage_table,
                Item=item,
                ConditionExpression="attribute_not_exists(seen_at) OR seen_at < :s",
                ExpressionAttributeValues={":s": {"N": repr(seen_at)}},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False  # a later run already wrote a newer reading
        if copy is None:
            # A consumer whose every event was lost still appears in reports without --consumer.
            for period in {counter.period, counter.period[:7]}:
                entry = table.index_key(period, counter.consumer)
                self.dynamodb.put_item(TableName=self.usage_table, Item=entry)
        return True

    def _plan(self, counter: Counter) -> str | None:
        """For a counter that does not name its plan (written before it did): the plan the
        consumer's totals for the counter's month name."""
        answer = self.dynamodb.get_item(
            TableName=self.usage_table,
            Key=table.totals_key(counter.consumer, counter.period[:7]),
            ConsistentRead=True,
            ProjectionExpression="#p",
            ExpressionAttributeNames={"#p": "plan"},
        )
        return answer.get("Item", {}).get("plan", {}).get("S") or None


def _same(copy: dict[str, Any], counter: Counter) -> bool:
    """Whether the copy already holds the counter's reading (and plan, when it names one)."""
    if int(copy["used"]["N"]) != counter.used:
        return False
    return counter.plan is None or copy.get("plan", {}).get("S") == counter.plan


def counted(copies: list[dict[str, Any]], period: str) -> int | None:
    """Units the copies count towards `period`; None when none of them does."""
    total = None
    for copy in copies:
        name = copy["sk"]["S"].removeprefix(table.COUNTER_PREFIX)
        if counts_towards(period, f"{name}#{copy['pk']['S']}"):
            total = (total or 0) + int(copy["used"]["N"])
    return total


def unattributed_price(copies: list[dict[str, Any]]) -> tuple[str, int]:
    """(plan, micro-units per 1,000 units) of the copy written last: the consumer's latest plan."""
    if not copies:
        return "", 0
    latest = max(copies, key=lambda c: float(c.get("seen_at", {"N": "0"})["N"]))
    return latest.get("plan", {}).get("S", ""), int(latest.get("micros_per_1000", {"N": "0"})["N"])


class Every:
    """Runs `step` every `interval_s` on a daemon thread until stopped (`tollway dev`)."""

    def __init__(self, step: Callable[[], object], interval_s: float, name: str) -> None:
        self.step = step
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:
                logger.exception("usage true-up failed; it runs again")


def build_true_up(settings: Settings, dynamodb: Any = None, config: Any = None) -> TrueUp:
    """The true-up of a deployment: its tables, the plans' prices, one client."""
    from tollway import aws
    from tollway.usage.billing import prices

    if not settings.usage_table or not settings.quota_table:
        raise ValueError("TOLLWAY_USAGE_TABLE and TOLLWAY_QUOTA_TABLE must be set")
    if config is None:
        from tollway.config.compile import compile_infra

        config = compile_infra(Path(settings.infra), settings.stage, settings.environ)
    client = dynamodb or aws.client("dynamodb")
    return TrueUp(client, settings.usage_table, settings.quota_table, prices(config.plans))
