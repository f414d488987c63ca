"""Record usage events exactly once, a batch at a time, into the totals billing reads (UsageTable).

A batch is the SQS messages of one usage-function invocation. Its events are summed per
consumer and UTC day (a *group*), and each group is one DynamoDB transaction:

    Update  MESSAGE#<producer>#<n> / DAY#<day>#CONSUMER#<c>   ADD seqs {s1, s2, ...}
            CONDITION NOT contains(seqs, s1) AND NOT contains(seqs, s2) ...
            (one per producer and block of 64 message numbers in the group; a bare event,
            as older routers and old log lines send, is a Put of EVENT#<event_id> instead)
    Update  CONSUMER#<c> / DAY#<day>, MONTH#<month>,
            DAY#<day>#ROUTE#<r>, MONTH#<month>#ROUTE#<r>      ADD <counter> <sum>, ...

so each totals item is written once per batch, not once per event, and a message's part
is recorded together with the record that it was: a redelivered message, or a message
sent twice, fails a condition and its part is taken out (the cancellation carries the
record as it was, which names the numbers already in); a crash before the commit changes
nothing. A part holds at most `events.MAX_EVENTS` events, so it never needs more than one
transaction (DynamoDB's limit: 100 items); a group that does is cut between parts.

Contention: usage-function invocations running at once on events of one consumer write
the same totals items, and DynamoDB cancels a transaction that meets another in progress
on an item (`TransactionConflict`), or throttles a hot item. Nothing of a cancelled
transaction was written, so it is retried, after a jittered, growing pause
(`RETRYABLE`, up to `MAX_ATTEMPTS`); only then are the group's messages reported failed,
for SQS to deliver again. Contention never sends an event to the DLQ and never counts one
twice.

Counters are named, and each item adds the sums of its events' `counters()`: a new kind
of counter (per plan, say) is a new name there and nothing else.

Money is integer arithmetic: a plan's price per 1,000 units becomes integer micro-units
(from the decimal text of the price, not its binary float), and totals keep
`amount_nanos` = sum(units x micros per 1,000 units), exact for any number of events.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from tollway.config.models import Plan
from tollway.observability import logger
from tollway.usage import table
from tollway.usage.events import UsageEvent

# Replays and redeliveries must happen within this window to be recognised as duplicates.
DEDUPE_TTL_S = 90 * 86_400
REJECTED_STATUSES = frozenset({403, 429})
COUNTERS = ("requests", "rejected", "events", "units", "amount_nanos")
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


def counts(event: UsageEvent, price: Price) -> Counts:
    units = event.cost_units if event.admitted else 0
    return Counts(
        requests=1 if event.admitted else 0,
        rejected=1 if not event.admitted and event.status in REJECTED_STATUSES else 0,
        events=1,
        units=units,
        amount_nanos=units * price.micros_per_1000,
    )


def counters(event: UsageEvent, price: Price) -> dict[str, int]:
    """What one event adds to each of its totals items, by counter name."""
    c = counts(event, price)
    return {name: getattr(c, name) for name in COUNTERS}


def totals_keys(event: UsageEvent) -> list[table.Key]:
    return [
        table.totals_key(event.consumer_id, period, route)
        for period in (event.day, event.month)
        for route in (None, event.route_id)
    ]


# --- messages and their parts --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageKey:
    """A message's identity: (producer, seq), or a bare event's id (producer None)."""

    producer: str | None
    seq: int
    event_id: str | None = None

    @classmethod
    def of_event(cls, event_id: str) -> MessageKey:
        return cls(None, 0, event_id)


@dataclass(slots=True)
class Part:
    """The events of one message that fall in one group (consumer, day)."""

    key: MessageKey
    events: list[UsageEvent]


@dataclass(slots=True)
class Group:
    consumer: str
    day: str
    parts: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    recorded: set[MessageKey] = field(default_factory=set)  # recorded now
    duplicates: set[MessageKey] = field(default_factory=set)  # recorded before
    failed: set[MessageKey] = field(default_factory=set)  # not recorded: deliver again
    transactions: int = 0
    retries: int = 0


def groups(messages: Mapping[MessageKey, list[UsageEvent]]) -> list[Group]:
    """The batch's events by consumer and UTC day, each message's share of a group one part."""
    out: dict[tuple[str, str], Group] = {}
    for key, events in messages.items():
        shares: dict[tuple[str, str], list[UsageEvent]] = {}
        for event in events:
            shares.setdefault((event.consumer_id, event.day), []).append(event)
        for (consumer, day), share in shares.items():
            out.setdefault((consumer, day), Group(consumer, day)).parts.append(Part(key, share))
    return list(out.values())


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

    def record_batch(self, messages: Mapping[MessageKey, list[UsageEvent]]) -> BatchResult:
        """Record each message's events once; the result says which were, and which failed."""
        result = BatchResult()
        priced = {}
        for key, events in messages.items():
            try:
                for event in events:
                    self.price(event)
            except UnknownPlan as exc:
                logger.error("usage message cannot be billed", extra={"problem": str(exc)})
                result.failed.add(key)
                continue
            priced[key] = events
        for group in groups(priced):
            self._index(group)
            for chunk in self._chunks(group):
                try:
                    self._commit(group, chunk, result)
                except Contended as exc:
                    logger.warning(
                        "usage transaction contended; messages will be delivered again",
                        extra={"consumer_id": group.consumer, "day": group.day, "problem": str(exc)},
                    )
                    result.failed.update(part.key for part in chunk)
        result.recorded -= result.failed
        result.duplicates -= result.failed | result.recorded
        return result

    # --- one group's transactions --------------------------------------------------------

    def _chunks(self, group: Group) -> Iterable[list[Part]]:
        """The group's parts cut into runs that each fit one transaction."""
        chunk: list[Part] = []
        for part in group.parts:
            if chunk and self._size(group, [*chunk, part]) > MAX_ITEMS:
                yield chunk
                chunk = []
            chunk.append(part)
        if chunk:
            yield chunk

    @staticmethod
    def _size(group: Group, parts: list[Part]) -> int:
        records = {(p.key.producer, p.key.seq // table.MESSAGES_PER_RECORD) for p in parts if p.key.producer}
        bare = sum(len(p.events) for p in parts if p.key.producer is None)
        routes = {e.route_id for p in parts for e in p.events}
        return len(records) + bare + 2 + 2 * len(routes)

    def _commit(self, group: Group, parts: list[Part], result: BatchResult) -> None:
        attempt = 0
        while parts:
            items, dedupe = self._transaction(group, parts)
            result.transactions += 1
            try:
                self.dynamodb.transact_write_items(TransactItems=items)
            except self.dynamodb.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                done = _already_recorded(reasons, dedupe, self._record_as_it_is)
                if done:  # redelivered messages: take them out, write the rest at once
                    result.duplicates.update(done)
                    parts = [p for p in parts if p.key not in done]
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
            result.recorded.update(p.key for p in parts)
            return

    def _back_off(self, attempt: int, codes: set[str | None], result: BatchResult) -> int:
        attempt += 1
        if attempt >= MAX_ATTEMPTS:
            raise Contended(f"cancelled {attempt} times: {', '.join(sorted(map(str, codes)))}")
        result.retries += 1
        self.pause(min(BACKOFF_MAX_S, BACKOFF_S * 2**attempt) * (0.5 + self.jitter()))
        return attempt

    def _transaction(
        self, group: Group, parts: list[Part]
    ) -> tuple[list[dict[str, Any]], dict[int, tuple[dict[str, Any], list[MessageKey]]]]:
        """The TransactItems, and which messages each dedupe item (by index) stands for."""
        expires_at = {"N": str(int(self.now()) + DEDUPE_TTL_S)}
        items: list[dict[str, Any]] = []
        dedupe: dict[int, tuple[dict[str, Any], list[MessageKey]]] = {}
        records: dict[tuple[str, int], list[MessageKey]] = {}
        for part in parts:
            if part.key.producer is None:
                items.append(self._event_record(part, expires_at))
                dedupe[len(items) - 1] = (items[-1], [part.key])
            else:
                block = part.key.seq // table.MESSAGES_PER_RECORD
                records.setdefault((part.key.producer, block), []).append(part.key)
        for (producer, _), keys in records.items():
            items.append(self._message_record(producer, keys, group, expires_at))
            dedupe[len(items) - 1] = (items[-1], keys)
        totals: dict[str, tuple[table.Key, dict[str, int], UsageEvent]] = {}
        for part in parts:
            for event in part.events:
                adds = counters(event, self.price(event))
                for key in totals_keys(event):
                    sk = key["sk"]["S"]
                    _, sums, latest = totals.setdefault(sk, (key, {}, event))
                    for name, value in adds.items():
                        sums[name] = sums.get(name, 0) + value
                    if event.timestamp >= latest.timestamp:
                        totals[sk] = (key, sums, event)
        for key, sums, latest in totals.values():
            items.append(self._totals_update(key, sums, latest))
        return items, dedupe

    def _event_record(self, part: Part, expires_at: dict[str, str]) -> dict[str, Any]:
        event = part.events[0]
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

    def _message_record(
        self, producer: str, keys: list[MessageKey], group: Group, expires_at: dict[str, str]
    ) -> dict[str, Any]:
        seqs = sorted({k.seq for k in keys})
        values: dict[str, Any] = {f":q{i}": {"N": str(s)} for i, s in enumerate(seqs)}
        values |= {":seqs": {"NS": [str(s) for s in seqs]}, ":e": expires_at}
        return {
            "Update": {
                "TableName": self.table,
                "Key": table.message_dedupe_key(producer, seqs[0], group.consumer, group.day),
                "UpdateExpression": "ADD #s :seqs SET #e = :e",
                "ConditionExpression": " AND ".join(f"NOT contains(#s, :q{i})" for i in range(len(seqs))),
                "ExpressionAttributeNames": {"#s": "seqs", "#e": "expires_at"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _totals_update(self, key: table.Key, sums: dict[str, int], latest: UsageEvent) -> dict[str, Any]:
        added = [name for name, value in sums.items() if value]
        names = {f"#c{i}": name for i, name in enumerate(added)} | {"#plan": "plan", "#currency": "currency"}
        values = {f":c{i}": {"N": str(sums[name])} for i, name in enumerate(added)} | {
            ":plan": {"S": latest.plan},
            ":currency": {"S": self.price(latest).currency},
        }
        expression = "SET #plan = :plan, #currency = :currency"
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

    def _index(self, group: Group) -> None:
        """Who had usage in a period, for reports without --consumer; once per container."""
        billable = any(
            e.admitted or e.status in REJECTED_STATUSES for part in group.parts for e in part.events
        )
        if not billable:  # not the unauthenticated: they have no consumer to bill
            return
        for period in (group.day, group.day[:7]):
            if (period, group.consumer) in self._indexed:
                continue
            # Written before the totals: a crash in between leaves an index entry with no
            # usage (reported as zeros), never usage missing from the index.
            self.dynamodb.put_item(TableName=self.table, Item=table.index_key(period, group.consumer))
            self._indexed.add((period, group.consumer))


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
        seqs = {int(s) for s in record.get("seqs", {}).get("NS", [])}
        done.update(k for k in keys if k.seq in seqs)
    return done
