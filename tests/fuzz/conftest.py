"""The fuzzed gateway, served under uvicorn on loopback as `tollway dev` serves it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tollway.http.app import GatewayApp

from tests.backends import loopback_backend
from tests.fuzz.invariant import Recording
from tests.fuzz.stack import Credentials, credentials, gateway_app, write_fuzz_infra


@dataclass
class Served:
    url: str
    app: GatewayApp
    infra: Path
    creds: Credentials
    backend: Recording


@pytest.fixture
def served(aws, serve: Callable[..., str], tmp_path: Path, monkeypatch, capsys) -> Served:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    # Away from any `.tollway/dev.env` a developer's `tollway dev` left in the checkout.
    monkeypatch.chdir(tmp_path)
    backend = Recording(loopback_backend)
    infra = write_fuzz_infra(tmp_path, serve(backend))
    creds = credentials(infra, capsys)
    app = gateway_app(infra, aws)
    return Served(serve(app, proxy_headers=False), app, infra, creds, backend)
