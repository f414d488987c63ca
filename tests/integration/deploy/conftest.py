"""The built functions (`sam build`'s artifacts) in fresh interpreters, against the emulator."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tollway.dev.backends import DEMO_SERVICES

from tests.built import Container, FakeCodeDeploy, FakeLambda, artifacts, host_layer, runtime_python


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return artifacts(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def layer() -> list[Path]:
    return host_layer(runtime_python())


@pytest.fixture
def demo_services(serve: Callable[..., str]) -> dict[str, str]:
    """TOLLWAY_SERVICE_* for the demo backends, each on a free loopback port."""
    return {f"TOLLWAY_SERVICE_{name.upper()}": serve(app) for name, app in DEMO_SERVICES.items()}


def lambda_env(function: str, **variables: str) -> dict[str, str]:
    """What Lambda gives every function: credentials, region, its name; nothing of ours."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "POWERTOOLS_SERVICE_NAME": "tollway",
        "POWERTOOLS_METRICS_NAMESPACE": "Tollway",
        **variables,
    }


@pytest.fixture
def containers() -> Iterator[Callable[..., Container]]:
    started: list[Container] = []

    def start(handler: str, task_root: Path, layer: list[Path], env: dict[str, str]) -> Container:
        container = Container(handler, task_root, layer, env).start()
        started.append(container)
        return container

    yield start
    for container in started:
        container.stop()


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
