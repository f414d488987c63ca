"""Which instance of a service takes the next try: round-robin over the instances whose
circuit breaker lets a call through.

Round-robin, not least-outstanding: on Lambda a container serves one request at a time, so
its count of calls outstanding per instance is always 0 or 1, and least-outstanding would
send nearly every request to the first instance; the counts that would make it useful live
in other containers. Round-robin spreads one container's calls evenly and costs a counter.
Each container starts its rotation at a random instance, so that a fleet of fresh
containers does not begin on the same one.

An instance whose breaker is open is passed over, and the rotation continues after the
instance actually chosen, so while one instance is out the others share its load evenly
(a rotation that stepped once per request would give the next instance a double share).
Asking an instance's breaker is the point of no return: a half-open breaker hands its one
trial to the asker, so `pick` asks only the instance it is about to return.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence


class RoundRobin:
    __slots__ = ("next",)

    def __init__(self, start: int = 0) -> None:
        self.next = start

    def pick(
        self, instances: Sequence[str], allow: Callable[[str], bool], skip: Collection[str] = ()
    ) -> str | None:
        """The next instance, not in `skip`, that `allow` admits; None if there is none."""
        count = len(instances)
        start = self.next
        for step in range(count):
            index = (start + step) % count
            url = instances[index]
            if url not in skip and allow(url):
                self.next = index + 1
                return url
        return None


class Balancers:
    """One rotation per service, per container; the instance list may change under it."""

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self.rng = rng
        self._by_service: dict[str, RoundRobin] = {}

    def for_(self, service: str) -> RoundRobin:
        rotation = self._by_service.get(service)
        if rotation is None:
            # Taken modulo the instance count at each pick: any large range starts anywhere.
            rotation = self._by_service[service] = RoundRobin(int(self.rng() * 65_536))
        return rotation
