"""Push each consumer's units to Stripe Billing meter events, never twice (`usage push-stripe`).

A month is pushed as deltas against what Stripe already confirmed, kept in UsageTable per
consumer, plan and month (`STRIPE#PUSH#<month>#PLAN#<plan>`, table.py):

    pushed    units Stripe confirmed          seq      pushes confirmed so far
    pending   the push begun and not yet confirmed: seq, value, identifier, timestamp,
              customer, event name, payload keys, when it was begun

One push of a consumer and plan:
1. If a push is pending, it is sent again exactly as recorded (same identifier, value and
   timestamp): Stripe keeps identifiers unique for at least 24 hours, so a push that did
   reach Stripe is refused as a duplicate and counts as delivered. A pending push begun
   more than `STALE_AFTER_S` ago is not sent again automatically (Stripe may have forgotten
   its identifier): the run reports it, and once someone has looked at the meter's events
   in Stripe, `--resolve ID=sent` counts it as pushed and `--resolve ID=unsent` forgets it
   (the next delta is built anew, under the same identifier).
2. Otherwise the delta is the plan's units in the month (usage/report.py) minus `pushed`.
   The units only the quota counters hold (the true-up's unattributed units) count once the
   month's counters are final (`FINAL_AFTER_S` after its end): until then they include the
   reservations of requests in flight, which their settles give back and Stripe cannot. Units
   Stripe holds under a plan beyond its units (pushed as unattributed under the counter's
   plan, then attributed by a late event to another) are taken off the other plans' deltas:
   a unit is sent once, whichever plan it turns out to be.
   The push is recorded as pending (a conditional write on `seq`: two runs at once cannot
   both begin one), then sent, then confirmed: `pushed += value`, `seq += 1`, pending
   removed. A crash anywhere leaves either nothing begun or a pending push that the next
   run completes, so units are sent once; what is marked pushed Stripe has confirmed.
3. A refusal (4xx: Stripe kept nothing) of a push's first send removes it; the next run
   builds it again from the units then counted. A 5xx or a network failure keeps it: it may
   have arrived. So does a refusal of a re-send, which may be a duplicate answer we did not
   recognise (stripe_meter.py): it waits for `--resolve`. Either way the run reports one
   line per problem and exits non-zero; a failure that is not the event's own (network,
   credentials, 429, 5xx) stops the run.

The identifier is `tollway-<month>-<digest>-<seq>`: the digest is SHA-256 of the usage
table's name, the consumer and the plan, so it is deterministic and separate per deployment.
Its timestamp is the push's time while the month lasts, and the month's last second after:
Stripe takes timestamps up to 35 days old, so a month can be completed until 35 days after
its end (less an hour of margin), and is refused with one clear line after that.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from tollway.settings import Settings
from tollway.table.plans import Plan, StripeMeter
from tollway.usage import table
from tollway.usage.customers import StripeCustomers
from tollway.usage.report import ConsumerUsage, UsageReader
from tollway.usage.stripe_meter import MeterEvent, PushError

STALE_AFTER_S = 23 * 3600  # Stripe dedupes identifiers for "at least 24 hours"
STRIPE_MAX_AGE_S = 35 * 86_400  # Stripe refuses meter events older than 35 days
MARGIN_S = 3600
RUN_MARGIN_S = 30.0  # a scheduled run begins no consumer in its last 30 s
# The units only the quota counters hold (the true-up's unattributed units) are pushed once the
# month's counters are final: its requests' deadlines (30 s at most), their settles and two
# true-up runs (every 5 minutes) after its end. Until then they include reservations of requests
# in flight, which their settles give back, and Stripe cannot.
FINAL_AFTER_S = 15 * 60


class MeterSender(Protocol):
    def send(self, event: MeterEvent) -> bool: ...


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event: MeterEvent
    begun_at: int

    def to_item(self) -> dict[str, Any]:
        e = self.event
        return {
            "M": {
                "seq": {"N": str(self.seq)},
                "value": {"N": str(e.value)},
                "identifier": {"S": e.identifier},
                "timestamp": {"N": str(e.timestamp)},
                "customer": {"S": e.customer},
                "event_name": {"S": e.event_name},
                "customer_key": {"S": e.customer_key},
                "value_key": {"S": e.value_key},
                "begun_at": {"N": str(self.begun_at)},
            }
        }

    @classmethod
    def from_item(cls, value: dict[str, Any]) -> Pending:
        m = value["M"]
        event = MeterEvent(
            event_name=m["event_name"]["S"],
            customer=m["customer"]["S"],
            value=int(m["value"]["N"]),
            identifier=m["identifier"]["S"],
            timestamp=int(m["timestamp"]["N"]),
            customer_key=m["customer_key"]["S"],
            value_key=m["value_key"]["S"],
        )
        return cls(int(m["seq"]["N"]), event, int(m["begun_at"]["N"]))


@dataclass(frozen=True, slots=True)
class State:
    exists: bool
    pushed: int = 0
    seq: int = 0
    pending: Pending | None = None


@dataclass(frozen=True, slots=True)
class Pushed:
    consumer: str
    plan: str
    value: int
    identifier: str
    how: str  # "sent" | "already in Stripe" | "resolved as sent"

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer, "plan": self.plan, "units": self.value,
            "identifier": self.identifier, "how": self.how,
        }  # fmt: skip


@dataclass(slots=True)
class PushResult:
    period: str
    pushed: list[Pushed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    halted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "pushed": [p.to_json() for p in self.pushed],
            "problems": self.problems,
        }


def identifier(usage_table: str, consumer: str, plan: str, month: str, seq: int) -> str:
    digest = hashlib.sha256("\0".join((usage_table, consumer, plan)).encode()).hexdigest()[:32]
    return f"tollway-{month}-{digest}-{seq}"


def month_bounds(month: str) -> tuple[int, int]:
    """[start, end) of a UTC calendar month, in epoch seconds."""
    year, number = int(month[:4]), int(month[5:7])
    start = calendar.timegm((year, number, 1, 0, 0, 0))
    end = calendar.timegm((year + number // 12, number % 12 + 1, 1, 0, 0, 0))
    return start, end


def event_timestamp(month: str, now: float) -> int | None:
    """When the month's next delta happened for Stripe; None once Stripe would refuse it."""
    start, end = month_bounds(month)
    stamp = int(min(max(now, start), end - 1))
    return stamp if stamp >= now - STRIPE_MAX_AGE_S + MARGIN_S else None


def months_to_push(now: float) -> list[str]:
    """The scheduled push: last month (for its late events; its last second is at most 31
    days old, which Stripe still takes) and this month."""
    this = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m")
    start, _ = month_bounds(this)
    return [datetime.fromtimestamp(start - 1, UTC).strftime("%Y-%m"), this]


class StripePush:
    def __init__(
        self,
        dynamodb: Any,
        usage_table: str,
        plans: Mapping[str, Plan],
        sender: MeterSender,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dynamodb = dynamodb
        self.table = usage_table
        self.meters: dict[str, StripeMeter] = {n: p.stripe for n, p in plans.items() if p.stripe}
        self.sender = sender
        self.clock = clock
        self.reader = UsageReader(dynamodb, usage_table)
        self.customers = StripeCustomers(dynamodb, usage_table)

    def run(
        self,
        month: str,
        consumers: Iterable[str] | None = None,
        resolve: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> PushResult:
        """Push `month` (YYYY-MM) for `consumers` (default: all with usage in it, by name).
        `resolve`: identifier -> "sent" | "unsent", for pending pushes too old to send again.
        `deadline` (the clock's time): no consumer is begun after it; the rest wait for the
        next run, which is reported."""
        table.month(month)  # ValueError for anything but a month
        result = PushResult(month)
        resolve = dict(resolve or {})
        if consumers is None:
            consumers = self.reader.consumers(month) if self.meters else []
        todo = list(consumers)
        for done, consumer in enumerate(todo):
            if deadline is not None and self.clock() > deadline:
                result.problems.append(f"out of time: {len(todo) - done} consumer(s) left for the next run")
                return result
            usage = self.reader.consumer(consumer, month)
            billed = [(p, units) for p, units in sorted(self._pushable(usage).items()) if p in self.meters]
            customer = self.customers.get(consumer) if billed else None
            credit = Credit(self._over_pushed(consumer, month, billed))
            for plan, units in billed:
                self._push(result, consumer, plan, units, self.meters[plan], customer, resolve, credit)
                if result.halted:
                    return result
        result.problems += [f"--resolve {ident}: no pending push of {month} has it" for ident in resolve]
        return result

    def _pushable(self, usage: ConsumerUsage) -> dict[str, int]:
        """Each plan's units Stripe may be sent now: what the events attributed, and what only
        the quota counters hold (the true-up's unattributed units) once the month is final."""
        units = {plan: share.units for plan, share in usage.plans.items()}
        final = self.clock() >= month_bounds(usage.period)[1] + FINAL_AFTER_S
        if usage.unattributed_units and not final:
            units[usage.unattributed_plan] -= usage.unattributed_units
        return units

    def _over_pushed(self, consumer: str, month: str, billed: list[tuple[str, int]]) -> int:
        """Units Stripe holds (or is being sent) under a plan beyond that plan's units now: units
        pushed as unattributed under the counter's plan that a late event then gave to another.
        They are billed already, so they are not sent again under the other plan."""
        over = 0
        for plan, units in billed:
            state = self._state(consumer, month, plan)
            committed = state.pushed + (state.pending.event.value if state.pending is not None else 0)
            over += max(0, committed - units)
        return over

    # ---- one consumer and plan ------------------------------------------------------

    def _push(
        self,
        result: PushResult,
        consumer: str,
        plan: str,
        units: int,
        meter: StripeMeter,
        customer: str | None,
        resolve: dict[str, str],
        credit: Credit,
    ) -> None:
        where = f"{consumer} on {plan}"
        state = self._state(consumer, result.period, plan)
        if state.pending is not None:
            if not self._finish(result, consumer, plan, state.pending, resolve):
                return
            state = self._state(consumer, result.period, plan)
        delta = units - state.pushed
        if delta < 0:
            result.problems.append(
                f"{where}: Stripe holds {state.pushed} units, usage counts {units}"
                " (the difference is not sent again under another plan)"
            )
            return
        delta -= credit.take(delta)
        if delta == 0:
            return
        if customer is None:
            result.problems.append(
                f"{where}: {delta} units not pushed: no Stripe customer"
                f" (tollway usage stripe-customer --consumer {consumer} --set cus_...)"
            )
            return
        now = self.clock()
        stamp = event_timestamp(result.period, now)
        if stamp is None:
            result.problems.append(
                f"{where}: {delta} units not pushed: {result.period} ended more than 35 days ago,"
                " and Stripe refuses meter events older than that"
            )
            return
        event = MeterEvent(
            event_name=meter.meter,
            customer=customer,
            value=delta,
            identifier=identifier(self.table, consumer, plan, result.period, state.seq),
            timestamp=stamp,
            customer_key=meter.customer_key,
            value_key=meter.value_key,
        )
        pending = Pending(state.seq, event, int(now))
        if not self._begin(consumer, result.period, plan, state, pending):
            result.problems.append(f"{where}: another push is running; nothing sent")
            return
        self._deliver(result, consumer, plan, pending, first=True)

    def _finish(
        self, result: PushResult, consumer: str, plan: str, pending: Pending, resolve: dict[str, str]
    ) -> bool:
        """Complete a push begun before; True when it is settled (confirmed, or forgotten)."""
        ident, value = pending.event.identifier, pending.event.value
        decision = resolve.pop(ident, None)
        if decision == "sent":
            self._settle(consumer, result.period, plan, pending, confirmed=True)
            result.pushed.append(Pushed(consumer, plan, value, ident, "resolved as sent"))
            return True
        if decision == "unsent":  # a person checked: Stripe holds nothing under it; build it anew
            self._settle(consumer, result.period, plan, pending, confirmed=False)
            return True
        age = self.clock() - pending.begun_at
        if age > STALE_AFTER_S:
            result.problems.append(
                f"{consumer} on {plan}: push {ident} ({value} units) was begun {age / 3600:.0f} h ago"
                " and never confirmed; Stripe may not recognise its identifier any more, so it is not"
                " sent again: check the meter's events in Stripe, then run with"
                f" --resolve {ident}=sent or =unsent"
            )
            return False
        return self._deliver(result, consumer, plan, pending, first=False)

    def _deliver(
        self, result: PushResult, consumer: str, plan: str, pending: Pending, *, first: bool
    ) -> bool:
        """Send a pending push. A refusal of its first send means Stripe kept nothing: it is
        forgotten. A refusal of a re-send is kept: it may be a duplicate not recognised."""
        event = pending.event
        try:
            created = self.sender.send(event)
        except PushError as exc:
            ident = event.identifier
            note = f" (kept as pending: {ident})"
            if exc.stored_nothing and first:
                self._settle(consumer, result.period, plan, pending, confirmed=False)
                note = ""
            elif exc.stored_nothing:
                note = f" (kept as pending: {ident}; if Stripe holds none, run with --resolve {ident}=unsent)"
            result.problems.append(f"{consumer} on {plan}: {event.value} units not pushed: {exc}{note}")
            result.halted = exc.halt
            return False
        self._settle(consumer, result.period, plan, pending, confirmed=True)
        how = "sent" if created else "already in Stripe"
        result.pushed.append(Pushed(consumer, plan, event.value, event.identifier, how))
        return True

    # ---- the push record --------------------------------------------------------------

    def _state(self, consumer: str, month: str, plan: str) -> State:
        item = self.dynamodb.get_item(
            TableName=self.table, Key=table.push_key(consumer, month, plan), ConsistentRead=True
        ).get("Item")
        if item is None:
            return State(exists=False)
        pending = Pending.from_item(item["pending"]) if "pending" in item else None
        return State(True, int(item["pushed"]["N"]), int(item["seq"]["N"]), pending)

    def _begin(self, consumer: str, month: str, plan: str, state: State, pending: Pending) -> bool:
        key = table.push_key(consumer, month, plan)
        conflict = self.dynamodb.exceptions.ConditionalCheckFailedException
        try:
            if not state.exists:
                self.dynamodb.put_item(
                    TableName=self.table,
                    Item={**key, "pushed": {"N": "0"}, "seq": {"N": "0"}, "pending": pending.to_item()},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            else:
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression="SET #pending = :pending",
                    ConditionExpression="#seq = :seq AND attribute_not_exists(#pending)",
                    ExpressionAttributeNames={"#pending": "pending", "#seq": "seq"},
                    ExpressionAttributeValues={":pending": pending.to_item(), ":seq": {"N": str(state.seq)}},
                )
        except conflict:
            return False
        return True

    def _settle(self, consumer: str, month: str, plan: str, pending: Pending, *, confirmed: bool) -> None:
        """Confirmed: count the pending push as pushed. Not: forget it (Stripe kept nothing).
        Conditional on the same pending push: a concurrent run that settled it wins."""
        names = {"#pending": "pending", "#seq": "seq"}
        values: dict[str, Any] = {":seq": {"N": str(pending.seq)}}
        if confirmed:
            update = "ADD #pushed :value, #seq :one SET #last = :ident REMOVE #pending"
            names |= {"#pushed": "pushed", "#last": "last_identifier"}
            values |= {
                ":value": {"N": str(pending.event.value)},
                ":one": {"N": "1"},
                ":ident": {"S": pending.event.identifier},
            }
        else:
            update = "REMOVE #pending"
        with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.update_item(
                TableName=self.table,
                Key=table.push_key(consumer, month, plan),
                UpdateExpression=update,
                ConditionExpression="#pending.#seq = :seq",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )


@dataclass(slots=True)
class Credit:
    """A consumer's units Stripe holds under one plan beyond it (`_over_pushed`), set against
    the deltas of its other plans."""

    left: int

    def take(self, delta: int) -> int:
        taken = min(delta, self.left)
        self.left -= taken
        return taken


class PushFailed(Exception):
    """A scheduled push left problems (each was logged): the invocation fails, so it shows."""


def build_handler(
    settings: Settings,
    config: Any,
    dynamodb: Any = None,
    sender: MeterSender | None = None,
    clock: Callable[[], float] = time.time,
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """StripePushFunction's handler: this month (and the last while Stripe takes it), every
    consumer. The Stripe key is read once per container (`stripe_meter.api_key`)."""
    from tollway import aws
    from tollway.observability import logger
    from tollway.usage.stripe_meter import StripeMeterEvents, api_key

    if not settings.usage_table:
        raise ValueError("TOLLWAY_USAGE_TABLE is not set")
    environ = settings.environ or {}
    if sender is None:
        sender = StripeMeterEvents(api_key(environ), api_base=environ.get("TOLLWAY_STRIPE_API_BASE"))
    push = StripePush(dynamodb or aws.client("dynamodb"), settings.usage_table, config.plans, sender, clock)

    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        now = clock()
        left_s = context.get_remaining_time_in_millis() / 1000 if context is not None else 300.0
        deadline = now + left_s - RUN_MARGIN_S
        results = []
        for month in months_to_push(now):
            # Each hour starts at another consumer: a run cut short by its deadline leaves a
            # different tail every time, so no consumer waits for ever.
            consumers = push.reader.consumers(month)
            turn = int(now // 3600) % len(consumers) if consumers else 0
            results.append(push.run(month, consumers[turn:] + consumers[:turn], deadline=deadline))
        for result in results:
            for pushed in result.pushed:
                logger.info("pushed to Stripe", extra={"period": result.period, **pushed.to_json()})
            for problem in result.problems:
                logger.error("Stripe push problem", extra={"period": result.period, "problem": problem})
        problems = [p for r in results for p in r.problems]
        if problems:
            raise PushFailed(f"{len(problems)} problem(s), the first: {problems[0]}")
        return {"pushed": {r.period: len(r.pushed) for r in results}}

    return handler
