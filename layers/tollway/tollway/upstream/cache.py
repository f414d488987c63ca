"""Per-container response caching: a bounded LRU with a time to live per entry.

A route (`cache:` on the route) caches its final response; a backend (`cache:` on the
backend) caches its JSON answer. Either is only consulted for a caller's GET or HEAD. Keys
carry the consumer id unless the config says `shared: true`. A backend's `Cache-Control`
can only shorten or forbid storing: `no-store` and `no-cache` forbid it, `private`
forbids it in a shared cache, `max-age` caps the configured `ttl_s`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from tollway.config.models import Cache

Clock = Callable[[], float]


class LruCache:
    def __init__(self, max_entries: int, clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        self._entries[key] = (self.clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


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
        self._caches: dict[Hashable, LruCache] = {}

    def for_(self, owner: Hashable, config: Cache) -> LruCache:
        cache = self._caches.get(owner)
        if cache is None:
            cache = self._caches[owner] = LruCache(config.max_entries, self.clock)
        return cache
