from __future__ import annotations

from tollway.config.models import Breaker
from tollway.upstream.breaker import Breakers, CircuitBreaker


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only():
    breaker = CircuitBreaker(Breaker(failures=3, cooldown_s=10), Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()


def test_half_open_lets_one_trial_through():
    clock = Clock()
    breaker = CircuitBreaker(Breaker(failures=1, cooldown_s=10), clock)
    breaker.failure()
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    clock.now = 20
    assert breaker.allow()
    breaker.release()  # cancelled: no verdict, the next caller may try
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_one_breaker_per_service_url():
    breakers = Breakers(Clock())
    config = Breaker()
    assert breakers.get("http://a", config) is breakers.get("http://a", Breaker(failures=9))
    assert breakers.get("http://a", config) is not breakers.get("http://b", config)
