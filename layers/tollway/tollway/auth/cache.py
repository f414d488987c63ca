"""A bounded least-recently-used map whose entries expire: one per container, per kind."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class TtlLru(Generic[V]):
    """At most `size` entries, each served for `ttl_s` seconds after it was stored.

    A full map evicts its least recently used entry, so a flood of new keys can push
    out only entries of its own map, never grow memory.
    """

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key, _MISSING)
        if entry is _MISSING:
            return None
        expires, value = entry  # type: ignore[misc]
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)
