"""What this container last saw of each counter item, so that rejected traffic costs no call.

Counters only grow within a period and a window, except where a metered route's settle
returns unused reservation (tollway.quota.settle). A remembered value is then a lower
bound on the truth only for a short while, so each entry keeps when it was seen: the
rate window's count is trusted until the window ends (requests are never returned), and
a full quota, where refunds happen, only for `QuotaAdmission.recheck_s`.
"""

from __future__ import annotations

from tollway.quota.store import Counters


class CounterMemory:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: dict[str, tuple[Counters, float]] = {}

    def get(self, pk: str) -> Counters | None:
        seen = self._seen.get(pk)
        return seen[0] if seen is not None else None

    def seen_at(self, pk: str) -> float:
        """When `pk` was last put (the admission clock's time); 0 if never."""
        seen = self._seen.get(pk)
        return seen[1] if seen is not None else 0.0

    def put(self, pk: str, counters: Counters, at: float = 0.0) -> None:
        # Items of past periods are never asked for again: evict the least recently written.
        self._seen.pop(pk, None)
        if len(self._seen) >= self.size:
            del self._seen[next(iter(self._seen))]
        self._seen[pk] = (counters, at)

    def __len__(self) -> int:
        return len(self._seen)
