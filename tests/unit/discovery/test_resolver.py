"""A resolver's refresh rules, with an in-memory lookup, a fake clock and explicit threads."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tollway.discovery.resolver import Resolver
from tollway.table.targets import Reference

REF = Reference("ssm", "/tollway/users")


class Lookup:
    """Answers from `values` in turn; an exception in the list is raised instead."""

    def __init__(self, *values) -> None:
        self.values = list(values)
        self.names: list[str] = []

    def __call__(self, name: str) -> tuple[str, ...]:
        self.names.append(name)
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Deferred:
    """Holds the background work until the test runs it, as a thread would later."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        self.pending.append(work)

    def run(self) -> None:
        while self.pending:
            self.pending.pop(0)()


def resolver(lookup: Lookup, clock: Clock, spawn: Deferred) -> Resolver:
    return Resolver(REF, lookup, ttl_s=30, retry_s=5, clock=clock, spawn=spawn)


def test_fresh_values_are_served_without_a_lookup():
    lookup, clock, spawn = Lookup(("http://a",)), Clock(), Deferred()
    r = resolver(lookup, clock, spawn)
    assert r.refresh() is True
    clock.now += 29
    assert [r.current() for _ in range(3)] == [("http://a",)] * 3
    assert lookup.names == ["/tollway/users"] and spawn.pending == []


def test_a_stale_value_is_served_while_one_refresh_runs_in_the_background():
    lookup, clock, spawn = Lookup(("http://a",), ("http://b", "http://c")), Clock(), Deferred()
    r = resolver(lookup, clock, spawn)
    r.refresh()
    clock.now += 30
    assert r.current() == ("http://a",)
    assert r.current() == ("http://a",)
    assert len(spawn.pending) == 1  # one refresh at a time
    spawn.run()
    assert r.current() == ("http://b", "http://c")
    assert spawn.pending == []


@pytest.mark.parametrize("failure", [RuntimeError("throttled"), ()], ids=["error", "no instances"])
def test_a_failed_refresh_keeps_the_last_good_value_and_retries_later(failure):
    lookup, clock, spawn = Lookup(("http://a",), failure, ("http://b",)), Clock(), Deferred()
    r = resolver(lookup, clock, spawn)
    r.refresh()
    clock.now += 30
    r.current()
    spawn.run()
    assert r.current() == ("http://a",) and spawn.pending == []
    clock.now += 5  # retry_s, not the TTL
    assert r.current() == ("http://a",)
    spawn.run()
    assert r.current() == ("http://b",)
    assert len(lookup.names) == 3


def test_without_a_first_value_there_are_no_instances_until_a_lookup_succeeds():
    lookup, clock, spawn = Lookup(RuntimeError("down"), ("http://a",)), Clock(), Deferred()
    r = resolver(lookup, clock, spawn)
    assert r.refresh() is False
    assert r.current() == ()
    clock.now += 5
    assert r.current() == ()
    spawn.run()
    assert r.current() == ("http://a",)
