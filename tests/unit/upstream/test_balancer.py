"""Round-robin instance choice: order, skipping, and what it asks the breakers."""

from __future__ import annotations

from collections import Counter

from tollway.upstream.balancer import Balancers, RoundRobin

URLS = ("http://a", "http://b", "http://c")


def always(url: str) -> bool:
    return True


def test_rotates_through_the_instances_in_order():
    rotation = RoundRobin()
    assert [rotation.pick(URLS, always) for _ in range(7)] == [*URLS, *URLS, "http://a"]


def test_an_instance_that_is_out_does_not_double_the_next_ones_share():
    rotation = RoundRobin()
    picks = Counter(rotation.pick(URLS, lambda url: url != "http://a") for _ in range(100))
    assert picks == {"http://b": 50, "http://c": 50}


def test_only_the_chosen_instance_is_asked():
    # Asking a half-open breaker hands out its one trial: only the instance used may ask.
    asked = []

    def allow(url: str) -> bool:
        asked.append(url)
        return url == "http://b"

    assert RoundRobin().pick(URLS, allow) == "http://b"
    assert asked == ["http://a", "http://b"]


def test_skips_instances_already_tried_and_gives_up_when_none_is_left():
    rotation = RoundRobin()
    assert rotation.pick(URLS, always, skip={"http://a", "http://b"}) == "http://c"
    assert rotation.pick(URLS, always, skip=set(URLS)) is None
    assert rotation.pick(URLS, lambda url: False) is None
    assert rotation.pick((), always) is None


def test_survives_the_instance_list_changing_under_it():
    rotation = RoundRobin(start=2)
    assert rotation.pick(URLS, always) == "http://c"
    assert rotation.pick(URLS[:2], always) == "http://b"  # index 3 % 2
    assert rotation.pick(("http://z",), always) == "http://z"


def test_each_service_has_its_own_rotation_starting_where_the_rng_says():
    balancers = Balancers(rng=lambda: 0.5)
    first = balancers.for_("users")
    assert balancers.for_("users") is first and balancers.for_("orders") is not first
    assert first.pick(URLS, always) == URLS[32_768 % 3]
    starts = [Balancers(rng=lambda share=i / 30: share).for_("s") for i in range(30)]
    spread = Counter(rotation.pick(URLS, always) for rotation in starts)
    assert min(spread.values()) >= 9
