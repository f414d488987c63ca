"""gRPC services on loopback and gateways in front of them, built from real infra folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.grpc_backends import ThingsServer, copy_protos
from tests.integration.upstream.conftest import write_infra


@pytest.fixture
def things() -> Iterator[ThingsServer]:
    server = ThingsServer().start()
    yield server
    server.stop()


def grpc_infra(root: Path, services: dict[str, Any], routes: list[dict[str, Any]], **defaults: Any) -> Path:
    """`write_infra` plus the test protos under protos/."""
    return copy_protos(write_infra(root, services, routes, **defaults))
