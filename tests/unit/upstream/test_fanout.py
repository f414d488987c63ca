"""The dependency-graph runner with in-memory calls (timing-free, order and failure rules)."""

from __future__ import annotations

import asyncio
import time

import pytest
from tollway.config.models import Breaker, Retry
from tollway.table.targets import ServiceTarget
from tollway.table.templates import Template
from tollway.upstream.call import BackendFailure
from tollway.upstream.fanout import DeadlinePassed, RequiredBackendFailed, fan_out

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def backend(name: str, *deps: str, required: bool = True):
    from tollway.table.routes import CompiledBackend

    return CompiledBackend(
        name=name, service="s", target=ServiceTarget(("http://x",)), path=Template.parse("/"), query=(),
        method=None, headers=(), body=None, timeout_s=1.0, required=required, pick=None, rename={},
        depends_on=frozenset(deps), retry=Retry(), breaker=Breaker(), cache=None,
    )  # fmt: skip


class Calls:
    def __init__(self, **plan):
        self.plan = plan  # name -> value, BackendFailure, or ("sleep", seconds)
        self.started: list[tuple[str, frozenset[str]]] = []
        self.cancelled: list[str] = []

    async def __call__(self, b, results):
        self.started.append((b.name, frozenset(results)))
        outcome = self.plan[b.name]
        if isinstance(outcome, BackendFailure):
            raise outcome
        if isinstance(outcome, float):
            try:
                await asyncio.sleep(outcome)
            except asyncio.CancelledError:
                self.cancelled.append(b.name)
                raise
            return {"slept": outcome}
        return outcome


async def test_dependants_see_their_dependencies_answers():
    calls = Calls(a={"id": 1}, b={"id": 2}, c={"x": 3})
    results, failures = await fan_out(
        [backend("a"), backend("b"), backend("c", "a", "b")], calls, time.monotonic() + 1
    )
    assert results == {"a": {"id": 1}, "b": {"id": 2}, "c": {"x": 3}} and failures == {}
    assert calls.started[-1] == ("c", frozenset({"a", "b"}))


async def test_required_failure_cancels_the_rest():
    calls = Calls(a=BackendFailure("boom"), b=5.0)
    with pytest.raises(RequiredBackendFailed) as caught:
        await fan_out([backend("a"), backend("b")], calls, time.monotonic() + 10)
    assert caught.value.backend == "a" and calls.cancelled == ["b"]


async def test_optional_failure_skips_its_dependants():
    calls = Calls(a=BackendFailure("boom"), b={"ok": 1}, c={"never": 1})
    results, failures = await fan_out(
        [backend("a", required=False), backend("b"), backend("c", "a", required=False)],
        calls,
        time.monotonic() + 1,
    )
    assert results == {"b": {"ok": 1}}
    assert set(failures) == {"a", "c"} and "skipped" in failures["c"].reason
    assert [name for name, _ in calls.started] == ["a", "b"]


async def test_deadline_with_a_required_backend_outstanding():
    calls = Calls(a=5.0, b={"ok": 1})
    with pytest.raises(DeadlinePassed) as caught:
        await fan_out([backend("a"), backend("b"), backend("c", "a")], calls, time.monotonic() + 0.05)
    assert caught.value.waiting_for == ["a", "c"] and calls.cancelled == ["a"]


async def test_deadline_with_only_optional_backends_outstanding():
    calls = Calls(a=5.0, b={"ok": 1})
    results, failures = await fan_out(
        [backend("a", required=False), backend("b")], calls, time.monotonic() + 0.05
    )
    assert results == {"b": {"ok": 1}} and failures["a"].timed_out and calls.cancelled == ["a"]


async def test_other_errors_propagate_after_cancelling():
    async def call(b, results):
        if b.name == "a":
            raise ValueError("a bug")
        await asyncio.sleep(5)

    with pytest.raises(ValueError):
        await fan_out([backend("a"), backend("b")], call, time.monotonic() + 10)
