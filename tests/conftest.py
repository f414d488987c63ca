"""Shared fixtures: the moto server on loopback, resources from template.yaml, real backends.

Every AWS call in the tests goes to a moto server on 127.0.0.1 (never to AWS): the
session fixture points the standard boto3 variables at it before any client exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
INFRA = ROOT / "infra"

# No test may reach real AWS: fake credentials, and a region, before anything imports boto3 clients.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Tollway",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer
    from tollway.dev.serve import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    yield url
    server.stop()
    if previous is None:
        os.environ.pop("AWS_ENDPOINT_URL", None)
    else:
        os.environ["AWS_ENDPOINT_URL"] = previous


@pytest.fixture
def aws(moto_url: str) -> dict[str, str]:
    """A clean emulator with the template's tables and queues; returns their env variables."""
    from tollway.dev.template import provision, read_template

    httpx.post(f"{moto_url}/moto-api/reset")
    provisioned = provision(
        read_template(TEMPLATE),
        boto3.client("dynamodb", endpoint_url=moto_url),
        boto3.client("sqs", endpoint_url=moto_url),
    )
    return provisioned.environment


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Start ASGI apps on loopback for one test: `url = serve(app)`."""
    from tollway.dev.serve import serve_in_thread

    started = []

    def start(app, **kwargs) -> str:
        served = serve_in_thread(app, **kwargs)
        started.append(served)
        return served.url

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each function's folder as `sam build` lays it out (tests/built.py)."""
    from tests.built import artifacts

    return artifacts(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def layer() -> list[Path]:
    """The layer's sys.path entries, for this machine and the Lambda runtime's Python."""
    from tests.built import host_layer, runtime_python

    return host_layer(runtime_python())


@pytest.fixture
def containers() -> Iterator[Callable[..., Any]]:
    """Start warm containers of built functions for one test: `containers(handler, root, layer, env)`."""
    from tests.built import Container

    started: list[Container] = []

    def start(handler: str, task_root: Path, layer: list[Path], env: dict[str, str]) -> Container:
        container = Container(handler, task_root, layer, env).start()
        started.append(container)
        return container

    yield start
    for container in started:
        container.stop()
