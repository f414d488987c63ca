"""Admission: spend the principal's plan for one request, in one DynamoDB round trip.

`QuotaAdmission.spend(ctx)` is one request's `Spend`. The admit step (tollway.pipeline) runs
it, and after the answer settles it and states what is left (`remaining`: the `RateLimit`
field); the plan step states the plan (`policy`: `RateLimit-Policy`) on every authenticated
answer. Those two are the only writers of the RateLimit fields.

The round trip is awaited (tollway.aws.dynamodb, on the container's shared HTTP transport)
within the route's deadline, so under uvicorn other requests run while it is on the wire.

    remembered exhausted? -> 429, no call
    pick a shard          -> one conditional UpdateItem (tollway.quota.store)
    admitted              -> the item's counters, stated as `RateLimit`
    condition failed      -> remember it until the window ends; 429 naming the limit
    DynamoDB unavailable  -> the route's quota_failure: closed 503, open admit uncounted

Hot consumers: a plan with `shards: S` spreads each consumer over S counter items, each
holding an equal part of the quota and of the burst (`limits.share`, parts adding up to
the whole). A request goes to one shard chosen at random among those this container does
not know to be exhausted. Never over-admits, since no shard passes its part; the price is
early rejection: a request can find its shard full while another still has room (the
container then avoids that shard until the window ends). RateLimit values for a sharded
plan are estimates (the shard's remaining times S).

Admission comes last among the gateway's own checks (pipeline.route_steps): what the gateway
refuses by itself is refused before this step spends anything. A request it still refuses
after admission without calling any backend (the deadline passed during the quota call, a
breaker opened meanwhile) is refunded exactly: the admit step settles it at a cost of 0.

Metered routes (`metering`, tollway.policy.metering): admission spends the request's
reservation, and `settle` queues the difference to the answer's actual cost
(tollway.quota.settle), sent after the response. Since that can return units, a
remembered full quota is trusted for `recheck_s` only when the config has metered routes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from tollway.core.context import Context
from tollway.core.principal import Principal
from tollway.errors import Forbidden, ServiceUnavailable, TooManyRequests
from tollway.observability import count, logger
from tollway.quota import limits
from tollway.quota.memory import CounterMemory
from tollway.quota.settle import Settlement, Settlements
from tollway.quota.store import Budget, Counters, Exhausted, QuotaStore, StoreUnavailable, counter_pk

if TYPE_CHECKING:
    from tollway.table.plans import Plan
    from tollway.table.routes import CompiledRoute

# How long a remembered full quota is believed when settles can return units.
RECHECK_S = 1.0
# How long past its request's deadline a counter write is left to finish, so that one that was
# counted after the caller got its 503 is known, and taken back.
LATE_ANSWER_S = 2.0


def reservation(ctx: Context[CompiledRoute]) -> int:
    """Units admission spends for this request: the route's cost, or a metered route's reservation."""
    route = ctx.route
    return route.metering.reservation(ctx.request.body, route.cost) if route.metering else route.cost


class QuotaAdmission:
    def __init__(
        self,
        store: QuotaStore,
        plans: Mapping[str, Plan],
        *,
        now: Callable[[], float] = time.time,
        choose: Callable[[int], int] = random.randrange,
        memory: CounterMemory | None = None,
        refunds: bool = False,
    ) -> None:
        self.store = store
        self.plans = plans
        self.now = now
        self.choose = choose
        self.memory = memory if memory is not None else CounterMemory()
        # Metered routes can return units: a remembered full quota is then rechecked.
        self.recheck_s = RECHECK_S if refunds else None
        self.settlements = Settlements(store, self.memory, now=now)
        # Each plan's `RateLimit-Policy`, made for the quota period it was made in.
        self._policies: dict[str, tuple[float, float, list[tuple[str, str]]]] = {}

    def spend(self, ctx: Context[CompiledRoute]) -> Spend:
        """This request's admission, not yet run (the admit step runs it: tollway.pipeline)."""
        return Spend(self, ctx)

    def policy(self, principal: Principal) -> list[tuple[str, str]]:
        """`RateLimit-Policy` of the principal's plan, stated on every authenticated answer
        (the plan step, tollway.pipeline): the plan, without a count. Made once per plan and
        quota period."""
        plan = self.plans.get(principal.plan)
        if plan is None or (plan.rate is None and plan.quota is None):
            return []
        now = self.now()
        made = self._policies.get(principal.plan)
        if made is None or not made[0] <= now < made[1]:
            counter = limits.counter_period(now, plan)
            value = limits.policy_field(plan.rate, plan.quota, counter if plan.quota else None)
            made = (counter.start, counter.end, [("ratelimit-policy", value)])
            self._policies[principal.plan] = made
        return made[2]


async def _finished_by(task: asyncio.Task[Counters], seconds: float) -> bool:
    """Whether `task` is done within `seconds`; it is never cancelled (asyncio.shield and a
    timeout would do the same at about twice the CPU: this runs once per admission)."""
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(seconds, wake)
    try:
        await woken
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


class Spend:
    """One request's admission: the plan's windows at one instant, the call, and its settle.

    `budget` and `counters` are the counter item the request was counted on (or refused on)
    and what it held as last seen: `remaining` states them as the `RateLimit` field."""

    def __init__(self, admission: QuotaAdmission, ctx: Context[CompiledRoute]) -> None:
        self.admission = admission
        self.ctx = ctx
        self.plan = admission.plans.get(ctx.principal.plan)
        self.cost = reservation(ctx)
        self.now = admission.now()
        self.budget: Budget | None = None
        self.counters: Counters | None = None
        self._charged = 0  # what the counter holds for this request, as queued
        if self.plan is not None:
            self.counter = limits.counter_period(self.now, self.plan)
            self.window = limits.window(self.now, self.plan.rate) if self.plan.rate is not None else None

    async def run(self) -> None:
        plan = self.plan
        if plan is None:
            raise Forbidden(f"plan {self.ctx.principal.plan!r} is not offered")
        # A request known to cost nothing needs no write on a plan without a rate limit; a metered
        # one is known only after its answer, so it always gets one (its settle corrects that item).
        if plan.rate is None and (plan.quota is None or (self.cost == 0 and self.ctx.route.metering is None)):
            self._admitted()  # nothing to count
            return
        await self._count()

    def settle(self) -> None:
        """After the answer: queue the correction of what was spent to `ctx.cost_units` (a
        metered answer's actual cost, or 0 for a request the gateway refused without calling
        a backend); `remaining` then states the counter as it will be."""
        delta = self.ctx.cost_units - self._charged
        if not self.ctx.admitted or self.budget is None or delta == 0:
            return  # not counted (no quota, or the store failed open), or exact already
        self._charged = self.ctx.cost_units
        if self.counters is not None:
            self.counters = replace(self.counters, used=self.counters.used + delta)
        budget, ctx = self.budget, self.ctx
        self.admission.settlements.add(
            Settlement(
                pk=budget.pk,
                delta=delta,
                expires_at=budget.expires_at,
                window=budget.window,
                route_id=ctx.route.id,
                consumer_id=ctx.principal.consumer_id,
                request_id=ctx.request.request_id,
            )
        )

    def remaining(self) -> str | None:
        if self.budget is None:
            return None
        return self._limit_field(self.budget, self.counters)

    def _admitted(self) -> None:
        self.ctx.admitted = True
        self.ctx.cost_units = self.ctx.reserved_units = self._charged = self.cost

    async def _count(self) -> None:
        assert self.plan is not None
        memory = self.admission.memory
        budgets = [self._budget(shard) for shard in range(self.plan.shards)]
        verdicts = [self._remembered(budget) for budget in budgets]
        open_ = [budget for budget, verdict in zip(budgets, verdicts, strict=True) if verdict is None]
        if not open_:
            limit = "rate" if "rate" in verdicts else "quota"
            self.budget = budgets[verdicts.index(limit)]
            self.counters = memory.get(self.budget.pk)
            raise self._rejection(limit)
        budget = open_[self.admission.choose(len(open_))] if len(open_) > 1 else open_[0]
        seen = memory.get(budget.pk)
        try:
            counters = await self._spend(budget, seen)
        except Exhausted as exhausted:
            counters = exhausted.counters or await self._read(budget)
            if counters is not None:
                memory.put(budget.pk, counters, self.now)
            limit = self._verdict(budget, counters) if counters is not None else None
            limit = limit or ("quota" if self.plan.rate is None else "rate")
            self.budget, self.counters = budget, counters
            raise self._rejection(limit) from None
        except StoreUnavailable as failure:
            self._unavailable(failure)
            return
        memory.put(budget.pk, counters, self.now)
        self.budget, self.counters = budget, counters
        self._admitted()
        self.ctx.counted_at = self.now  # the event's period is the counter's (usage/events.py)

    async def _spend(self, budget: Budget, seen: Counters | None) -> Counters:
        """The conditional write, waited for until the deadline. A write whose answer comes
        after it may have been counted all the same, and the counter is also the bill (the usage
        true-up): it is left to finish, for `LATE_ANSWER_S` more, and taken back if it was
        counted. The request was refused (503) or admitted uncounted (a route that fails open:
        billed from its event, which says so), so the counter must not hold it either way."""
        store, stale, deadline = self.admission.store, self._stale(seen), self._deadline()
        if deadline <= time.monotonic():
            raise StoreUnavailable("Timeout")  # not sent: nothing to take back
        loop = asyncio.get_running_loop()
        write = loop.create_task(store.spend(budget, self.cost, stale, deadline=deadline + LATE_ANSWER_S))
        try:
            finished = await _finished_by(write, deadline - time.monotonic())
        except asyncio.CancelledError:  # the request itself was abandoned: it is never answered
            self._take_back_if_counted(budget, write)
            raise
        if not finished:
            self._take_back_if_counted(budget, write)
            raise StoreUnavailable("Timeout")
        return write.result()

    def _take_back_if_counted(self, budget: Budget, write: asyncio.Task[Counters]) -> None:
        refund = Settlement(
            pk=budget.pk,
            delta=-self.cost,
            expires_at=budget.expires_at,
            window=budget.window,
            route_id=self.ctx.route.id,
            consumer_id=self.ctx.principal.consumer_id,
            request_id=self.ctx.request.request_id,
        )
        self.admission.settlements.add_if_counted(write, refund)

    def _deadline(self) -> float:
        """How long the quota call may wait: what is left of the route's deadline, or, on a
        route that fails open, half of it, so that the backends keep time for the answer the
        route promises when DynamoDB is silent."""
        deadline = self.ctx.deadline
        if self.ctx.route.quota_failure != "open":
            return deadline
        now = time.monotonic()
        return now + max(deadline - now, 0.0) / 2

    def _budget(self, shard: int) -> Budget:
        plan, shards = self.plan, self.plan.shards
        return Budget(
            pk=counter_pk(self.counter.key, shard, self.ctx.principal.consumer_id),
            expires_at=limits.expires_at(self.counter),
            quota=limits.share(plan.quota.limit, shards, shard) if plan.quota is not None else None,
            rate=limits.share(limits.burst(plan.rate), shards, shard) if plan.rate is not None else None,
            window=self.window.attribute if self.window is not None else None,
            plan=self.ctx.principal.plan,
        )

    def _remembered(self, budget: Budget) -> str | None:
        """The verdict from what this container remembers; a full quota that settles may have
        since refunded is believed for `recheck_s` only, then DynamoDB is asked again."""
        memory, recheck = self.admission.memory, self.admission.recheck_s
        verdict = self._verdict(budget, memory.get(budget.pk))
        if verdict != "quota" or recheck is None or self.now - memory.seen_at(budget.pk) <= recheck:
            return verdict
        assert budget.quota is not None
        return verdict if self.cost > budget.quota else None  # more than the whole budget: never

    def _verdict(self, budget: Budget, counters: Counters | None) -> str | None:
        """The limit this request would pass on `budget`, judging by `counters`; None: room."""
        used = counters.used if counters is not None else 0
        if budget.quota is not None and used + self.cost > budget.quota:
            return "quota"
        if (
            budget.rate is not None
            and counters is not None
            and counters.window == budget.window
            and counters.requests + 1 > budget.rate
        ):
            return "rate"
        return None

    def _stale(self, seen: Counters | None) -> list[str]:
        """Window attributes older than the previous window: the one before it, and any seen."""
        if self.window is None:
            return []
        stale = [limits.window_attribute(self.window.length_ms, self.window.index - 2)]
        if seen is not None:  # of this plan's window length or another's (limits.Window)
            stale += [name for name in seen.windows if limits.window_over(name, self.now)]
        return stale

    async def _read(self, budget: Budget) -> Counters | None:
        try:
            return await self.admission.store.read(budget, deadline=self._deadline())
        except StoreUnavailable:
            return None

    def _limit_field(self, budget: Budget, counters: Counters | None) -> str:
        plan, shards = self.plan, self.plan.shards
        fields = []
        if plan.rate is not None and self.window is not None and budget.rate is not None:
            requests = counters.requests if counters is not None and counters.window == budget.window else 0
            remaining = min(limits.burst(plan.rate), (budget.rate - requests) * shards)
            fields.append(("rate", remaining, limits.seconds_until(self.now, self.window.end)))
        if plan.quota is not None and budget.quota is not None:
            used = counters.used if counters is not None else 0
            remaining = min(plan.quota.limit, (budget.quota - used) * shards)
            fields.append(("quota", remaining, limits.seconds_until(self.now, self.counter.end)))
        return limits.limit_field(fields)

    def _rejection(self, limit: str) -> TooManyRequests:
        plan, budget = self.plan, self.budget
        assert plan is not None and budget is not None
        if limit == "quota":
            assert plan.quota is not None and budget.quota is not None
            end = self.counter.end
            if self.cost > budget.quota:
                what = "request reserves" if self.ctx.route.metering else "route costs"
                detail = f"quota exceeded: this {what} {self.cost} units, more than the plan allows"
            else:
                detail = (
                    f"quota exceeded: the plan allows {plan.quota.limit} units per {plan.quota.per} (UTC)"
                )
        else:
            assert plan.rate is not None and self.window is not None
            end = self.window.end
            length = limits.window_ms(plan.rate) / 1000
            detail = (
                f"rate limit exceeded: the plan allows {limits.burst(plan.rate)} requests per {length:g} s"
            )
        error = TooManyRequests(detail, retry_after=limits.retry_after(self.now, end), limit=limit)
        error.extensions["violated-policies"] = [limit]
        return error

    def _unavailable(self, failure: StoreUnavailable) -> None:
        route = self.ctx.route
        count("QuotaStoreFailures", route.id)
        logger.warning(
            "quota store unavailable",
            extra={
                "reason": failure.reason,
                "quota_failure": route.quota_failure,
                "route_id": route.id,
                "consumer_id": self.ctx.principal.consumer_id,
                "request_id": self.ctx.request.request_id,
            },
        )
        if route.quota_failure == "open":
            count("QuotaFailedOpen", route.id)
            self._admitted()  # uncounted: nothing to settle, nothing left to state
            return
        raise ServiceUnavailable(
            "the quota store is unavailable; try again shortly", headers={"retry-after": "1"}
        )
