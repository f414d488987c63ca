"""A gateway over a recording echo backend and a decoy server that must never be reached."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from tollway.assemble import build_app
from tollway.http.app import GatewayApp
from tollway.settings import Settings

from tests.infra_files import write_infra

ROUTES = """\
- id: users.get
  path: /v1/users/{id}
  methods: [GET, POST]
  public: true
  backends:
    - {name: b, service: svc, path: "/base/users/{id}", query: {q: "{id}"}}
- id: tagged
  path: /v1/tagged/{tag}
  methods: [GET]
  public: true
  backends:
    - {name: b, service: svc, path: /base/tagged, headers: {x-tag: "{tag}"}}
"""


@dataclass
class Recorder:
    """Answers 200 and keeps every request as it arrived: raw path, query, headers."""

    seen: list[dict] = field(default_factory=list)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.seen.append(
            {
                "raw_path": scope["raw_path"].decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps({"ok": True})})


@dataclass
class Fixture:
    app: GatewayApp
    url: str  # the gateway under uvicorn, for raw request lines
    client: httpx.AsyncClient | None  # the gateway in-process, for header values uvicorn would refuse
    backend: Recorder
    backend_url: str
    decoy: Recorder
    decoy_url: str
    infra: Path
    local_app: GatewayApp | None = None  # the in-process app behind `client`


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    """Started once per module (three uvicorn servers per test would dominate the run)."""
    from tollway.dev.serve import serve_in_thread

    backend, decoy = Recorder(), Recorder()
    running = [serve_in_thread(backend), serve_in_thread(decoy)]
    backend_url, decoy_url = running[0].url, running[1].url
    infra = write_infra(tmp_path_factory.mktemp("security"), {"svc": backend_url}, ROUTES)
    app = build_app(Settings(infra=infra, stage="dev", environ={}))
    running.append(serve_in_thread(app))
    yield Fixture(app, running[2].url, None, backend, backend_url, decoy, decoy_url, infra)
    for served in running:
        served.stop()


@pytest.fixture
async def gw(servers: Fixture) -> AsyncIterator[Fixture]:
    servers.backend.seen.clear()
    servers.decoy.seen.clear()
    # Its own app: the served one's HTTP client belongs to uvicorn's event loop.
    servers.local_app = build_app(Settings(infra=servers.infra, stage="dev", environ={}))
    servers.client = httpx.AsyncClient(
        transport=httpx.ASGITransport(servers.local_app), base_url="https://gw.example.com"
    )
    yield servers
    await servers.client.aclose()
    for hook in servers.local_app.on_shutdown:
        await hook()


def raw_request(url: str, target: str, headers: list[tuple[str, str]] = ()) -> tuple[int, bytes]:
    """Send `GET <target>` byte for byte (no client normalizes it); return status and head."""
    parts = urlsplit(url)
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    return int(head.split(b" ", 2)[1]), head


async def asgi_get(
    app: GatewayApp, path: str, query: bytes, headers: list[tuple[bytes, bytes]] = ()
) -> tuple[int, dict]:
    """One GET straight into the ASGI app, bytes as given: what Mangum hands over from an event."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": None,
        "query_string": query,
        "headers": [(b"host", b"gw.example.com"), *headers],
        "client": ("203.0.113.9", 0),
        "scheme": "https",
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode("latin-1") for k, v in start["headers"]}
