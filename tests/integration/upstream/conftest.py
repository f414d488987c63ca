"""Scripted loopback backends and a gateway built from a real infra folder written per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from tollway.config.compile import compile_infra
from tollway.core.context import Context
from tollway.core.messages import Request, Response
from tollway.core.principal import Principal
from tollway.gateway import Gateway
from tollway.http.app import GatewayApp
from tollway.table.routes import CompiledRoute
from tollway.transport.exchange import AiohttpExchanger
from tollway.upstream.dispatch import HttpUpstream

from tests.backends import read_body


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    cut_after: int | None = None  # close the connection after this many body bytes
    chunked: bool = False  # no content-length: the body comes in 64 KiB pieces


@dataclass
class Seen:
    method: str
    path: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Scripted:
    """An ASGI backend: `replies[path]` says what to answer (a list is consumed in order)."""

    replies: dict[str, Reply | list[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # paths whose caller hung up first

    def calls(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        raw_path = (scope.get("raw_path") or path.encode()).decode()
        query = scope["query_string"].decode()
        self.seen.append(Seen(scope["method"], path, raw_path, query, headers, body, time.monotonic()))
        planned = self.replies.get(path, Reply(404, {"error": "no such path"}))
        reply = (planned.pop(0) if len(planned) > 1 else planned[0]) if isinstance(planned, list) else planned
        if reply.delay_s:
            hung_up = asyncio.ensure_future(receive())
            done, _ = await asyncio.wait({hung_up}, timeout=reply.delay_s)
            if done:
                self.cancelled.append(path)
                return
            hung_up.cancel()
        payload = reply.body if reply.body is not None else orjson.dumps(reply.json)
        start = [(b"content-type", b"application/json")]
        if not reply.chunked:
            start.append((b"content-length", str(len(payload)).encode()))
        start += [(k.encode(), v.encode()) for k, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": start})
        if reply.chunked:
            for i in range(0, len(payload), 65536):
                await send({"type": "http.response.body", "body": payload[i : i + 65536], "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if reply.cut_after is not None:
            await send({"type": "http.response.body", "body": payload[: reply.cut_after], "more_body": True})
            raise ConnectionAbortedError("cut on purpose")
        await send({"type": "http.response.body", "body": payload})


class FakeAuthenticator:
    """Every caller is a consumer named by its `x-consumer` header (default c1)."""

    async def authenticate(
        self, request: Request, route: CompiledRoute, deadline: float | None = None
    ) -> Principal:
        consumer = request.headers.get("x-consumer", "c1")
        return Principal(consumer_id=consumer, plan="free", scopes=frozenset(), credential="api_key")


def write_infra(
    root: Path, services: dict[str, str | list[str]], routes: list[dict[str, Any]], **defaults: Any
) -> Path:
    (root / "routes").mkdir(parents=True, exist_ok=True)
    gateway = {"stages": {"test": {"services": services}}, "defaults": {"timeout_ms": 2000, **defaults}}
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway))
    (root / "plans.yaml").write_text(yaml.safe_dump({"plans": {"free": {}}}))
    for route in routes:
        route.setdefault("auth", ["api_key"])
        route.setdefault("methods", ["GET"])
    (root / "routes" / "team.yaml").write_text(yaml.safe_dump({"team": "team", "routes": routes}))
    return root


class Recorder:
    """Keeps every finished exchange, as the usage step would see it."""

    def __init__(self) -> None:
        self.exchanges: list[Context] = []

    def record(self, exchange: Context, response: Response, latency_ms: float) -> None:
        self.exchanges.append(exchange)

    def backends(self) -> list[tuple[str, int | None]]:
        return [(b.name, b.status) for b in self.exchanges[-1].backends]


@asynccontextmanager
async def gateway(
    infra: Path,
    *,
    clock: Callable[[], float] | None = None,
    usage: Recorder | None = None,
    rng: Callable[[], float] | None = None,
) -> AsyncIterator[tuple[httpx.AsyncClient, HttpUpstream]]:
    """`rng` also sets where each service's rotation starts (0.0: at its first instance)."""
    config = compile_infra(infra, "test")
    exchanger = AiohttpExchanger()
    options: dict[str, Any] = {"clock": clock, "rng": rng}
    upstream = HttpUpstream(exchanger, **{k: v for k, v in options.items() if v is not None})
    app = GatewayApp(Gateway(config, authenticator=FakeAuthenticator(), upstream=upstream, usage=usage))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as caller:
            yield caller, upstream
    finally:
        await exchanger.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
