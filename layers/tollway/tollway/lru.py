"""A bounded least-recently-used map whose entries expire: the container's one cache type.

Used for API key lookups (positive and negative, one map each) and for cached responses.
A full map evicts its least recently used entry, so a flood of new keys pushes out only
entries of its own map and never grows memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class ExpiringLru(Generic[V]):
    """At most `size` entries, each served for its time to live (`ttl_s` unless `put` says)."""

    def __init__(self, size: int, ttl_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key, _MISSING)
        if entry is _MISSING:
            return None
        expires, value = entry  # type: ignore[misc]
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V, ttl_s: float | None = None) -> None:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            return
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)
