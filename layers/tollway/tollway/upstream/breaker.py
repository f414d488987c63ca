"""A circuit breaker per backend instance (URL), per container, so that a dead one costs nothing.

closed: calls pass; `failures` consecutive failures open it.
open: calls fail at once, without a connection attempt, for `cooldown_s`.
half-open: after the cool-down one trial call passes (others still fail fast); its success
closes the breaker, its failure opens it for another cool-down.

A failure is a connection error, a timeout or a 5xx answer; a 4xx means the backend is alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.table.routes import Breaker as BreakerConfig


Clock = Callable[[], float]


class CircuitBreaker:
    __slots__ = ("config", "clock", "failures", "opened_at", "trial")

    def __init__(self, config: BreakerConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False  # a half-open trial call is under way

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at < self.config.cooldown_s:
            return "open"
        return "half-open"

    @property
    def permits(self) -> bool:
        """Whether `allow` would let a call start now, without taking a half-open trial."""
        state = self.state
        return state == "closed" or (state == "half-open" and not self.trial)

    def allow(self) -> bool:
        """May a call start now? In half-open state, only the first asker gets the trial."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self.trial:
            return False
        self.trial = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial = False

    def failure(self) -> None:
        self.failures += 1
        if self.trial or self.failures >= self.config.failures:
            self.opened_at = self.clock()
        self.trial = False

    def release(self) -> None:
        """A call ended without a verdict (cancelled by the deadline): free the trial slot."""
        self.trial = False


class Breakers:
    """One breaker per instance URL; the first backend config seen for a URL sets its thresholds."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._by_url: dict[str, CircuitBreaker] = {}

    def get(self, url: str, config: BreakerConfig) -> CircuitBreaker:
        breaker = self._by_url.get(url)
        if breaker is None:
            breaker = self._by_url[url] = CircuitBreaker(config, self.clock)
        return breaker
