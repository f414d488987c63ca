"""What this container last saw of each counter item, so that rejected traffic costs no call.

Counters only grow within a period and a window (no refunds), so a remembered value is a
lower bound on the truth: if the remembered count already leaves no room, the request is
rejected here, without DynamoDB, until the window or period (part of the item key) ends.
"""

from __future__ import annotations

from tollway.quota.store import Counters


class CounterMemory:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: dict[str, Counters] = {}

    def get(self, pk: str) -> Counters | None:
        return self._seen.get(pk)

    def put(self, pk: str, counters: Counters) -> None:
        # Items of past periods are never asked for again: evict the least recently written.
        self._seen.pop(pk, None)
        if len(self._seen) >= self.size:
            del self._seen[next(iter(self._seen))]
        self._seen[pk] = counters

    def __len__(self) -> int:
        return len(self._seen)
