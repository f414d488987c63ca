from __future__ import annotations

import pytest
from tollway.config.models import Cache
from tollway.lru import ExpiringLru
from tollway.upstream.cache import storable_ttl


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_the_least_recently_used_goes_first():
    clock = Clock()
    cache = ExpiringLru(2, clock=clock)
    cache.put("a", 1, 10)
    cache.put("b", 2, 10)
    assert cache.get("a") == 1  # now b is the least recently used
    cache.put("c", 3, 10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    clock.now = 10
    assert cache.get("a") is None and len(cache) == 1


@pytest.mark.parametrize(
    ("cache_control", "shared", "ttl"),
    [
        (None, False, 60),
        ("public, max-age=5", False, 5),
        ("max-age=600", False, 60),
        ("s-maxage=7, max-age=9", True, 7),
        ("no-store", False, 0),
        ("no-cache", True, 0),
        ("private", True, 0),
        ("private, max-age=30", False, 30),
        ("max-age=banana", False, 0),
    ],
)
def test_backend_cache_control_can_only_shorten(cache_control, shared, ttl):
    assert storable_ttl(Cache(ttl_s=60, shared=shared), [cache_control]) == ttl


def test_the_strictest_backend_decides():
    assert storable_ttl(Cache(ttl_s=60), ["max-age=30", None, "max-age=10"]) == 10
    assert storable_ttl(Cache(ttl_s=60), ["max-age=30", "no-store"]) == 0
