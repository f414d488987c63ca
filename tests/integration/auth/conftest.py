"""A gateway with API-key and JWT routes over a real echo backend, a JWKS server, and the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tollway.assemble import build_app
from tollway.cli import main
from tollway.http.app import GatewayApp
from tollway.settings import Settings

from tests.exchangers import Counting

DEV_ISSUER = "https://dev.tollway.local/"
HS_SECRET = "an-integration-secret-of-32-bytes"

ROUTES = """\
team: things
routes:
  - id: things.get
    path: /v1/things/{id}
    methods: [GET]
    auth: [api_key]
    scopes: [things:read]
    backends: [{name: echo, service: echo, path: "/echo/{id}"}]
  - id: either
    path: /v1/either
    methods: [GET, POST]
    auth: [api_key, jwt]
    backends: [{name: echo, service: echo, path: /echo/either}]
  - id: tokens.only
    path: /v1/tokens
    methods: [GET]
    auth: [jwt]
    scopes: [things:read]
    backends: [{name: echo, service: echo, path: /echo/tokens}]
"""

PLANS = """\
plans:
  free: {rate: {limit: 5, per: second}}
  pro: {rate: {limit: 100, per: second}}
"""


async def echo(scope, receive, send) -> None:
    """Answers with the headers it received, so a test can see what reached the backend."""
    if scope["type"] != "http":
        return
    body = json.dumps({k.decode(): v.decode() for k, v in scope["headers"]}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class JwksApp:
    """A JWKS document the test can rotate; counts the fetches it serves."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        body = json.dumps({"keys": self.keys}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def write_infra(
    root: Path, echo_url: str, jwks_url: str, *, cache_ttl_s: int = 1, legacy_keys: bool = True
) -> Path:
    legacy = str(legacy_keys).lower()
    infra = root / "infra"
    (infra / "routes").mkdir(parents=True)
    (infra / "gateway.yaml").write_text(
        f"""\
stages:
  dev: {{services: {{echo: "{echo_url}"}}}}
auth:
  api_keys:
    cache_ttl_s: {cache_ttl_s}
    negative_cache_ttl_s: {cache_ttl_s}
    cache_size: 1000
    legacy_keys: {legacy}
  jwt:
    - issuer: "http://127.0.0.1/idp"
      audience: tollway
      jwks_url: "{jwks_url}"
      jwks_refresh_s: 1
      plan_claim: plan
      default_plan: free
    - issuer: "{DEV_ISSUER}"
      audience: tollway
      hs256_secret_env: TEST_JWT_SECRET
      default_plan: pro
"""
    )
    (infra / "plans.yaml").write_text(PLANS)
    (infra / "routes" / "things.yaml").write_text(ROUTES)
    return infra


@dataclass
class Stack:
    infra: Path
    app: GatewayApp
    client: httpx.AsyncClient
    jwks: JwksApp
    environ: dict[str, str]
    reads: list[str]

    def cli(self, *argv: str, capsys) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(argv))
        out, err = capsys.readouterr()
        return status, out, err

    def create_key(self, capsys, *extra: str, consumer: str = "acme", plan: str = "free") -> dict[str, Any]:
        status, out, err = self.cli(
            "keys",
            "create",
            "--consumer",
            consumer,
            "--plan",
            plan,
            "--json",
            "--infra",
            str(self.infra),
            *extra,
            capsys=capsys,
        )
        assert status == 0, err
        return json.loads(out)


@pytest.fixture
async def stack_factory(aws, serve, tmp_path, monkeypatch) -> AsyncIterator[Callable[..., Stack]]:
    """`stack_factory(cache_ttl_s=1)`: the gateway app, built the way a container builds it."""
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    # Away from any `.tollway/dev.env` a developer's `tollway dev` left in the checkout.
    monkeypatch.chdir(tmp_path)
    echo_url = serve(echo)
    jwks = JwksApp()
    jwks_url = serve(jwks) + "/jwks.json"
    built: list[Stack] = []

    def factory(environ: dict[str, str] | None = None, **options: Any) -> Stack:
        infra = write_infra(tmp_path / str(len(built)), echo_url, jwks_url, **options)
        # The container's environment: the emulator's endpoint (set by the moto fixture) too.
        endpoint = {"AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]}
        environ = {**endpoint, **aws, "TEST_JWT_SECRET": HS_SECRET, **(environ or {})}
        # The container's one exchanger carries the key lookups too: count them on it.
        counted = Counting()
        settings = Settings(
            infra=infra,
            stage="dev",
            keys_table=aws["TOLLWAY_KEYS_TABLE"],
            key_secret_id=aws["TOLLWAY_KEY_SECRET_ID"],
            environ=environ,
        )
        app = build_app(settings, exchanger=counted)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway.test")
        stack = Stack(infra, app, client, jwks, environ, counted.targets)
        built.append(stack)
        return stack

    yield factory
    for stack in built:
        await stack.client.aclose()
        for hook in stack.app.on_shutdown:
            await hook()


@pytest.fixture
def stack(stack_factory) -> Stack:
    return stack_factory()
