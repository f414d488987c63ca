"""The built functions (`sam build`'s artifacts) in fresh interpreters, against the emulator,
with loopback stand-ins for Lambda Invoke and CodeDeploy."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from tollway.dev.backends import DEMO_SERVICES

from tests.built import FakeCodeDeploy, FakeLambda


@pytest.fixture
def demo_services(serve: Callable[..., str]) -> dict[str, str]:
    """TOLLWAY_SERVICE_* for the demo backends, each on a free loopback port."""
    return {f"TOLLWAY_SERVICE_{name.upper()}": serve(app) for name, app in DEMO_SERVICES.items()}


@pytest.fixture
def fake_lambda() -> Iterator[FakeLambda]:
    fake = FakeLambda()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_codedeploy() -> Iterator[FakeCodeDeploy]:
    fake = FakeCodeDeploy()
    fake.start()
    yield fake
    fake.stop()
