"""Per-container response caching: a bounded LRU with a time to live per entry.

A route (`cache:` on the route) caches its final response; a backend (`cache:` on the
backend) caches its JSON answer. Either is only consulted for a caller's GET or HEAD. Keys
carry the consumer id unless the config says `shared: true`. A backend's `Cache-Control`
can only shorten or forbid storing: `no-store` and `no-cache` forbid it, `private`
forbids it in a shared cache, `max-age` caps the configured `ttl_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

from tollway.lru import ExpiringLru

if TYPE_CHECKING:
    from tollway.config.models import Cache

Clock = Callable[[], float]


def storable_ttl(config: Cache, cache_controls: Iterable[str | None]) -> float:
    """Seconds an answer may be kept given its backends' Cache-Control; 0 forbids storing."""
    ttl = float(config.ttl_s)
    for value in cache_controls:
        if not value:
            continue
        for directive in value.lower().split(","):
            name, _, arg = directive.strip().partition("=")
            if name in ("no-store", "no-cache") or (name == "private" and config.shared):
                return 0.0
            if name in ("max-age", "s-maxage"):
                seconds = arg.strip().strip('"')
                ttl = min(ttl, float(seconds)) if seconds.isdigit() else 0.0
    return ttl


class Caches:
    """The container's caches, one per route or backend that opts in, each with its own bound."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._caches: dict[Hashable, ExpiringLru] = {}

    def for_(self, owner: Hashable, config: Cache) -> ExpiringLru:
        cache = self._caches.get(owner)
        if cache is None:
            cache = self._caches[owner] = ExpiringLru(config.max_entries, clock=self.clock)
        return cache
