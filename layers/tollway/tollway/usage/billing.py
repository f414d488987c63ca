"""Record usage events exactly once, a batch at a time, into the totals billing reads (UsageTable).

A batch is the SQS messages of one usage-function invocation. Whole messages are packed
into DynamoDB transactions (as many as fit DynamoDB's 100 items), and each transaction
writes every item it touches once, with the sums of its events:

    Update  MESSAGE#<producer>#<n> / MESSAGE          ADD seqs {o1, o2, ...}
            CONDITION NOT contains(seqs, o1) AND NOT contains(seqs, o2) ...
            (one per producer and block of 64 message numbers: each number's offset in its
            block, so that a record stays small and its condition far under 4 KB; a bare
            event, as older routers and old log lines send, is a Put of EVENT#<event_id>)
    Update  CONSUMER#<c> / DAY#<day>#ROUTE#<r>        (each consumer, day and route)
            CONSUMER#<c> / MONTH#<month>              (each consumer and month)
                                                      ADD <counter> <sum>, ..., SET plan, currency

so a totals item is written once per batch, not once per event: a batch of a thousand
one-event messages from ten router containers for ten consumers on one route each is one
transaction of ~40 items. A day's totals and a month's routes are sums of the
day-per-route items (tollway.usage.report); the month's own item makes the month, the bill,
one read. A message is recorded together with the record that it was: a redelivered
message, or one sent twice, fails a condition and is taken out (the cancellation carries
the record as it was, which names the numbers already in); a crash before the commit
changes nothing. A message holds at most `events.MAX_EVENTS` events, so it always fits one
transaction.

Contention: usage-function invocations running at once on events of one consumer write
the same totals items, and DynamoDB cancels a transaction that meets another in progress
on an item (`TransactionConflict`), or throttles a hot item. Nothing of a cancelled
transaction was written, so it is retried, after a jittered, growing pause
(`RETRYABLE`, up to `MAX_ATTEMPTS`); only then are its messages reported failed, for SQS
to deliver again. Contention never sends an event to the DLQ and never counts one twice.

Counters are named, and each item adds the sums of its events' `counters()`: a new kind
of counter (per plan, say) is a new name there and nothing else.

Money is integer arithmetic: a plan's price per 1,000 units becomes integer micro-units
(from the decimal text of the price, not its binary float), and totals keep
`amount_nanos` = sum(units x micros per 1,000 units), exact for any number of events.

An admitted event also ADDs its requests, units and amount to its plan's share of each
totals item (`plan#<plan>#<counter>`, table.py), in the same update: a consumer who changed
plans, or holds keys on two, is billed per plan. `plan` keeps the first plan that wrote
the item (items written before the per-plan counters: the last one), which is the plan
of any units the per-plan counters do not hold (usage/report.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from tollway.observability import logger
from tollway.table.plans import Plan
from tollway.usage import table
from tollway.usage.events import UsageEvent

# Replays and redeliveries must happen within this window to be recognised as duplicates.
DEDUPE_TTL_S = 90 * 86_400
REJECTED_STATUSES = frozenset({403, 429})
# `uncounted`: the units of admitted requests no quota counter counted (`UsageEvent.counted`).
COUNTERS = ("requests", "rejected", "events", "units", "amount_nanos", "uncounted")
PLAN_COUNTERS = ("requests", "units", "amount_nanos")
# DynamoDB's limit of items per TransactWriteItems.
MAX_ITEMS = 100
# Cancellation reasons (and error codes) that say "try again": nothing was written.
RETRYABLE = frozenset(
    {
        "TransactionConflict",
        "TransactionConflictException",
        "ThrottlingError",
        "ThrottlingException",
        "ProvisionedThroughputExceeded",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionInProgressException",
    }
)
MAX_ATTEMPTS = 12
BACKOFF_S = 0.02
BACKOFF_MAX_S = 1.0


@dataclass(frozen=True, slots=True)
class Price:
    micros_per_1000: int  # micro-units of `currency` per 1,000 units
    currency: str


FREE = Price(0, "USD")


class UnknownPlan(Exception):
    """An admitted event names a plan the config does not have: it cannot be billed."""


class Contended(Exception):
    """A group's transaction was still cancelled for contention after MAX_ATTEMPTS."""


def price_of(plan: Plan) -> Price:
    # repr() is the shortest text that round-trips the float: the YAML's own digits.
    per_1000 = Decimal(repr(plan.price.per_1000_units))
    micros = (per_1000 * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return Price(int(micros), plan.price.currency)


def prices(plans: Mapping[str, Plan]) -> dict[str, Price]:
    return {name: price_of(plan) for name, plan in plans.items()}


def render_amount(nanos: int) -> str:
    """Nano-units as a decimal string, rounded to micro-units, at least two decimals: "0.50"."""
    micros = (Decimal(nanos) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    amount = Decimal(int(micros)).scaleb(-6).normalize()
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))
    return f"{amount:f}"


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int
    rejected: int
    events: int
    units: int
    amount_nanos: int
    uncounted: int


def counts(event: UsageEvent, price: Price) -> Counts:
    units = event.cost_units if event.admitted else 0
    return Counts(
        requests=1 if event.admitted else 0,
        rejected=1 if not event.admitted and event.status in REJECTED_STATUSES else 0,
        events=1,
        units=units,
        amount_nanos=units * price.micros_per_1000,
        uncounted=units if event.counted is False else 0,
    )


def counters(event: UsageEvent, price: Price) -> dict[str, int]:
    """What one event adds to each of its totals items, by counter name."""
    c = counts(event, price)
    added = {name: getattr(c, name) for name in COUNTERS}
    if c.requests:  # an admitted event: its plan's share too
        added |= {table.plan_attribute(event.plan, name): getattr(c, name) for name in PLAN_COUNTERS}
    return added


def totals_keys(event: UsageEvent) -> list[table.Key]:
    """The totals items an event adds to: its consumer's day on its route, and its consumer's month."""
    return [
        table.totals_key(event.consumer_id, event.day, event.route_id),
        table.totals_key(event.consumer_id, event.month),
    ]


# --- messages and transactions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageKey:
    """A message's identity: (producer, seq), or a bare event's id (producer None)."""

    producer: str | None
    seq: int
    event_id: str | None = None

    @classmethod
    def of_event(cls, event_id: str) -> MessageKey:
        return cls(None, 0, event_id)

    @property
    def record(self) -> tuple[str, int] | None:
        """(producer, block) of the dedupe record that holds this message; None for a bare event."""
        return None if self.producer is None else (self.producer, self.seq // table.MESSAGES_PER_RECORD)


Messages = Mapping[MessageKey, list[UsageEvent]]


@dataclass(slots=True)
class BatchResult:
    recorded: set[MessageKey] = field(default_factory=set)  # recorded now
    duplicates: set[MessageKey] = field(default_factory=set)  # recorded before
    failed: set[MessageKey] = field(default_factory=set)  # not recorded: deliver again
    transactions: int = 0
    retries: int = 0


def transactions(messages: Messages) -> list[list[MessageKey]]:
    """Whole messages packed into transactions of at most MAX_ITEMS items, in order. A message
    never needs more: MAX_EVENTS events touch at most 2 x MAX_EVENTS totals items, plus its
    dedupe record."""
    out: list[list[MessageKey]] = []
    items: set[Any] = set()
    for key, events in messages.items():
        mine: set[Any] = {key.record or ("EVENT", key.event_id)}
        mine |= {(k["pk"]["S"], k["sk"]["S"]) for e in events for k in totals_keys(e)}
        if not out or len(items | mine) > MAX_ITEMS:
            out.append([])
            items = set()
        out[-1].append(key)
        items |= mine
    return out


class Ledger:
    """Writes batches of messages into UsageTable; recording a message again changes nothing."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        prices: Mapping[str, Price],
        *,
        pause: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.prices = prices
        self.pause = pause
        self.jitter = jitter
        self.now = now
        self._indexed: set[tuple[str, str]] = set()

    def price(self, event: UsageEvent) -> Price:
        if event.plan in self.prices:
            return self.prices[event.plan]
        if event.admitted and event.cost_units and event.plan:
            raise UnknownPlan(f"plan {event.plan!r} is not in the config")
        return FREE

    def record(self, event: UsageEvent) -> bool:
        """One bare event (deduplicated by its event_id): True if recorded now."""
        key = MessageKey.of_event(event.event_id)
        result = self.record_batch({key: [event]})
        if key in result.failed:
            raise Contended("the event's transaction was not committed")
        return key in result.recorded

    def record_batch(self, messages: Messages) -> BatchResult:
        """Record each message's events once; the result says which were, and which failed."""
        result = BatchResult()
        priced: dict[MessageKey, list[UsageEvent]] = {}
        for key, events in messages.items():
            try:
                for event in events:
                    self.price(event)
            except UnknownPlan as exc:
                logger.error("usage message cannot be billed", extra={"problem": str(exc)})
                result.failed.add(key)
                continue
            priced[key] = events
        self._index(priced)
        for keys in transactions(priced):
            try:
                self._commit({key: priced[key] for key in keys}, result)
            except Contended as exc:
                logger.warning(
                    "usage transaction contended; its messages will be delivered again",
                    extra={"messages": len(keys), "problem": str(exc)},
                )
                result.failed.update(keys)
        result.recorded -= result.failed
        result.duplicates -= result.failed | result.recorded
        return result

    # --- one transaction -----------------------------------------------------------------

    def _commit(self, messages: dict[MessageKey, list[UsageEvent]], result: BatchResult) -> None:
        attempt = 0
        while messages:
            items, dedupe = self._transaction(messages)
            result.transactions += 1
            try:
                self.dynamodb.transact_write_items(TransactItems=items)
            except self.dynamodb.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                done = _already_recorded(reasons, dedupe, self._record_as_it_is)
                if done:  # redelivered messages: take them out, write the rest at once
                    result.duplicates.update(done)
                    messages = {k: v for k, v in messages.items() if k not in done}
                    continue
                codes = {r.get("Code") for r in reasons} - {"None", None}
                if not codes or not codes <= RETRYABLE:
                    raise
                attempt = self._back_off(attempt, codes, result)
                continue
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code not in RETRYABLE:
                    raise
                attempt = self._back_off(attempt, {code}, result)
                continue
            result.recorded.update(messages)
            return

    def _back_off(self, attempt: int, codes: set[str | None], result: BatchResult) -> int:
        attempt += 1
        if attempt >= MAX_ATTEMPTS:
            raise Contended(f"cancelled {attempt} times: {', '.join(sorted(map(str, codes)))}")
        result.retries += 1
        self.pause(min(BACKOFF_MAX_S, BACKOFF_S * 2**attempt) * (0.5 + self.jitter()))
        return attempt

    def _transaction(
        self, messages: dict[MessageKey, list[UsageEvent]]
    ) -> tuple[list[dict[str, Any]], dict[int, tuple[dict[str, Any], list[MessageKey]]]]:
        """The TransactItems, and which messages each dedupe item (by index) stands for."""
        expires_at = {"N": str(int(self.now()) + DEDUPE_TTL_S)}
        items: list[dict[str, Any]] = []
        dedupe: dict[int, tuple[dict[str, Any], list[MessageKey]]] = {}
        records: dict[tuple[str, int], list[MessageKey]] = {}
        for key, events in messages.items():
            if key.record is None:
                items.append(self._event_record(events[0], expires_at))
                dedupe[len(items) - 1] = (items[-1], [key])
            else:
                records.setdefault(key.record, []).append(key)
        for keys in records.values():
            items.append(self._message_record(keys, expires_at))
            dedupe[len(items) - 1] = (items[-1], keys)
        totals: dict[tuple[str, str], tuple[table.Key, dict[str, int], UsageEvent]] = {}
        for events in messages.values():
            for event in events:
                adds = counters(event, self.price(event))
                for key in totals_keys(event):
                    slot = (key["pk"]["S"], key["sk"]["S"])
                    _, sums, first = totals.setdefault(slot, (key, {}, event))
                    for name, value in adds.items():
                        sums[name] = sums.get(name, 0) + value
                    if event.timestamp < first.timestamp:
                        totals[slot] = (key, sums, event)
        for key, sums, first in totals.values():
            items.append(self._totals_update(key, sums, first))
        return items, dedupe

    def _event_record(self, event: UsageEvent, expires_at: dict[str, str]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **table.dedupe_key(event.event_id),
                    "consumer": {"S": event.consumer_id},
                    "timestamp": {"S": event.timestamp.isoformat()},
                    "expires_at": expires_at,
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _message_record(self, keys: list[MessageKey], expires_at: dict[str, str]) -> dict[str, Any]:
        producer = keys[0].producer
        assert producer is not None
        offsets = sorted({k.seq % table.MESSAGES_PER_RECORD for k in keys})
        values: dict[str, Any] = {f":q{i}": {"N": str(o)} for i, o in enumerate(offsets)}
        values |= {":seqs": {"NS": [str(o) for o in offsets]}, ":e": expires_at}
        return {
            "Update": {
                "TableName": self.table,
                "Key": table.message_dedupe_key(producer, keys[0].seq),
                "UpdateExpression": "ADD #s :seqs SET #e = :e",
                "ConditionExpression": " AND ".join(f"NOT contains(#s, :q{i})" for i in range(len(offsets))),
                "ExpressionAttributeNames": {"#s": "seqs", "#e": "expires_at"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _totals_update(self, key: table.Key, sums: dict[str, int], first: UsageEvent) -> dict[str, Any]:
        added = [name for name, value in sums.items() if value]
        names = {f"#c{i}": name for i, name in enumerate(added)} | {"#plan": "plan", "#currency": "currency"}
        values = {f":c{i}": {"N": str(sums[name])} for i, name in enumerate(added)} | {
            ":plan": {"S": first.plan},
            ":currency": {"S": self.price(first).currency},
        }
        # `plan` keeps the item's first plan: the plan of units no per-plan counter holds.
        expression = "SET #plan = if_not_exists(#plan, :plan), #currency = :currency"
        if added:
            expression = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(added))) + " " + expression
        return {
            "Update": {
                "TableName": self.table,
                "Key": key,
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _record_as_it_is(self, item: dict[str, Any]) -> dict[str, Any]:
        """A dedupe record now, for a cancellation that did not carry it (an emulator)."""
        key = {"pk": item["Update"]["Key"]["pk"], "sk": item["Update"]["Key"]["sk"]}
        answer = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        return answer.get("Item") or {}

    def _index(self, messages: Messages) -> None:
        """Who had usage in a period, for reports without --consumer; once per container."""
        for events in messages.values():
            for event in events:
                # Not the unauthenticated: they have no consumer to bill.
                if not event.admitted and event.status not in REJECTED_STATUSES:
                    continue
                for period in (event.day, event.month):
                    if (period, event.consumer_id) in self._indexed:
                        continue
                    # Written before the totals: a crash in between leaves an index entry with
                    # no usage (reported as zeros), never usage missing from the index.
                    entry = table.index_key(period, event.consumer_id)
                    self.dynamodb.put_item(TableName=self.table, Item=entry)
                    self._indexed.add((period, event.consumer_id))


def _already_recorded(
    reasons: list[dict[str, Any]],
    dedupe: Mapping[int, tuple[dict[str, Any], list[MessageKey]]],
    read: Callable[[dict[str, Any]], dict[str, Any]],
) -> set[MessageKey]:
    """The messages a cancelled transaction's failed conditions show to be recorded already."""
    done: set[MessageKey] = set()
    for index, reason in enumerate(reasons):
        if reason.get("Code") != "ConditionalCheckFailed" or index not in dedupe:
            continue
        item, keys = dedupe[index]
        if keys[0].producer is None:
            done.update(keys)
            continue
        record = reason.get("Item") or read(item)
        offsets = {int(s) for s in record.get("seqs", {}).get("NS", [])}
        done.update(k for k in keys if k.seq % table.MESSAGES_PER_RECORD in offsets)
    return done
