"""A misbehaving AWS service on loopback for the lean callers' tests (fake_aws.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.unit.aws.fake_aws import Answer, FakeAws


@pytest.fixture
def fake_aws() -> Iterator[Callable[..., FakeAws]]:
    """`fake_aws(*answers, clock=None, refusal=None)`: a FakeAws on loopback for one test."""
    started: list[FakeAws] = []

    def start(*answers: Answer, **options: Any) -> FakeAws:
        started.append(FakeAws(*answers, **options))
        return started[-1]

    yield start
    for fake in started:
        fake.close()
