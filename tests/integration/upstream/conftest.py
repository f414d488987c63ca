"""Scripted loopback backends and a gateway built from a real infra folder written per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tollway.auth.principal import Principal
from tollway.config.compile import CompiledRoute, compile_infra
from tollway.http.app import GatewayApp
from tollway.http.messages import Request
from tollway.pipeline import Gateway
from tollway.upstream.client import make_client
from tollway.upstream.dispatch import HttpUpstream


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


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


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
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Seen(scope["method"], path, scope["query_string"].decode(), headers, body))
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
        start = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        start += [(k.encode(), v.encode()) for k, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": start})
        if reply.cut_after is not None:
            await send({"type": "http.response.body", "body": payload[: reply.cut_after], "more_body": True})
            raise ConnectionAbortedError("cut on purpose")
        await send({"type": "http.response.body", "body": payload})


class FakeAuthenticator:
    """Every caller is a consumer named by its `x-consumer` header (default c1)."""

    async def authenticate(self, request: Request, route: CompiledRoute) -> Principal:
        consumer = request.headers.get("x-consumer", "c1")
        return Principal(consumer_id=consumer, plan="free", scopes=frozenset(), credential="api_key")


def write_infra(root: Path, services: dict[str, str], routes: list[dict[str, Any]]) -> Path:
    (root / "routes").mkdir(parents=True, exist_ok=True)
    gateway = {"stages": {"test": {"services": services}}, "defaults": {"timeout_ms": 2000}}
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway))
    (root / "plans.yaml").write_text(yaml.safe_dump({"plans": {"free": {}}}))
    for route in routes:
        route.setdefault("auth", ["api_key"])
        route.setdefault("methods", ["GET"])
    (root / "routes" / "team.yaml").write_text(yaml.safe_dump({"team": "team", "routes": routes}))
    return root


@asynccontextmanager
async def gateway(
    infra: Path, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, HttpUpstream]]:
    config = compile_infra(infra, "test")
    backend_client = make_client()
    upstream = HttpUpstream(backend_client, clock=clock) if clock else HttpUpstream(backend_client)
    app = GatewayApp(Gateway(config, authenticator=FakeAuthenticator(), upstream=upstream))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as caller:
            yield caller, upstream
    finally:
        await backend_client.aclose()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
