"""The trust boundary's test stack: the real gateway over backends that record what they get.

Every request goes through one of the two real entry points (`via`): the ASGI app served
by uvicorn on loopback, spoken to byte for byte over a socket, or `functions/router/app.py`'s
handler given an API Gateway v2 event built from `tests/events/`. The backends are a
recording ASGI app and Python's `http.server` serving files (it decodes and normalises
paths, as many file servers do), next to a secret that no route's template points at.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import gzip
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import orjson
from tollway.assemble import build_app
from tollway.cli import main
from tollway.settings import Settings

from tests.backends import read_body
from tests.infra_files import write_infra
from tests.lambda_router import Context, load_router

ROOT = Path(__file__).resolve().parents[2]
GET_EVENT = json.loads((ROOT / "tests" / "events" / "http_api_v2_get.json").read_text())
ISSUER = "https://login.boundary.test/"
OTHER_ISSUER = "https://partner.boundary.test/"
JWT_SECRET = "a-boundary-test-secret-of-32-bytes!"
SECRET_TEXT = b"the secret outside the public folder"

ROUTES = """\
- id: echo
  path: /v1/echo/{thing}
  methods: [GET, POST]
  public: true
  backends: [{name: b, service: svc, path: "/echo/{thing}", query: {fixed: "1"}}]
- id: docs
  path: /v1/docs/{name}
  methods: [GET]
  public: true
  backends: [{name: f, service: files, path: "/public/{name}"}]
- id: tree
  path: /v1/tree/{rest+}
  methods: [GET]
  public: true
  backends: [{name: f, service: files, path: "/public/{rest}"}]
- id: search
  path: /v1/search
  methods: [GET]
  public: true
  validate: {query: {type: object, properties: {limit: {type: integer, maximum: 10}}}}
  backends: [{name: b, service: svc, path: /echo/search, query: {scope: public}}]
- id: cached
  path: /v1/cached/{mode}
  methods: [GET]
  public: true
  cache: {ttl_s: 60, shared: true}
  backends: [{name: b, service: svc, path: "/neg/{mode}"}]
- id: deny
  path: /v1/deny
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: /deny}]
- id: slow
  path: /v1/slow/{ms}
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: "/slow/{ms}"}]
- id: items.admin
  path: /v1/items/admin
  methods: [GET]
  auth: [api_key, jwt]
  backends: [{name: b, service: svc, path: /echo/items/admin}]
- id: items.get
  path: /v1/items/{id}
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: "/echo/items/{id}"}]
- id: ratio
  path: /v1/ratio
  methods: [GET]
  public: true
  validate:
    query:
      type: object
      properties: {ratio: {type: number, minimum: 0, maximum: 1}, limit: {type: integer, maximum: 10}}
  backends: [{name: b, service: svc, path: /echo/ratio}]
- id: orders
  path: /v1/orders
  methods: [POST]
  public: true
  validate: {body: {type: object, properties: {amount: {type: integer, maximum: 1000}, lines: {type: array}}}}
  backends: [{name: b, service: svc, path: /echo/orders}]
- id: orders.refs
  path: /v1/orders/refs
  methods: [POST]
  public: true
  validate:
    body:
      $defs: {amount: {type: integer, maximum: 1000}, order: {properties: {amount: {$ref: "#/$defs/amount"}}}}
      type: object
      allOf: [{$ref: "#/$defs/order"}]
      properties: {lines: {type: array, items: {anyOf: [{$ref: "#/$defs/order"}]}}}
      additionalProperties: {$ref: "#/$defs/order"}
  backends: [{name: b, service: svc, path: /echo/orders}]
- id: orders.forbids
  path: /v1/orders/forbids
  methods: [POST]
  public: true
  validate: {body: {type: object, properties: {amount: {type: integer}}, not: {required: [admin]}}}
  backends: [{name: b, service: svc, path: /echo/orders}]
- id: chain
  path: /v1/chain/{mode}
  methods: [GET]
  public: true
  compose: group
  backends:
    - {name: user, service: svc, path: "/json/{mode}"}
    - {name: items, service: svc, path: "/echo/items/{user.id}"}
    - {name: owned, service: svc, path: /echo/owned, query: {owner: "{user.id}"}, required: false}
- id: shared
  path: /v1/shared/{k}
  methods: [GET, HEAD]
  public: true
  cache: {ttl_s: 60, shared: true}
  backends: [{name: b, service: svc, path: "/reflect/{k}"}]
- id: shared.composed
  path: /v1/composed/{k}
  methods: [GET]
  public: true
  compose: group
  backends: [{name: r, service: svc, path: "/reflect/{k}", cache: {ttl_s: 60, shared: true}}]
- id: shared.varies
  path: /v1/varies/{k}
  methods: [GET]
  public: true
  cache: {ttl_s: 60, shared: true, vary: [accept-language]}
  backends: [{name: b, service: svc, path: "/reflect/{k}"}]
- id: mine
  path: /v1/mine/{k}
  methods: [GET]
  auth: [api_key, jwt]
  forward_scopes: true
  cache: {ttl_s: 60}
  backends: [{name: b, service: svc, path: "/reflect/{k}"}]
- id: quick
  path: /v1/quick
  methods: [POST]
  public: true
  timeout_ms: 500
  backends: [{name: b, service: svc, path: /echo/quick}]
- id: relay
  path: /v1/relay/{mode}
  methods: [GET]
  public: true
  compose: group
  backends:
    - {name: user, service: svc, path: "/json/{mode}"}
    - {name: sent, service: svc, path: /echo/relay, method: POST, body: {n: "{user.n}", s: "n={user.n}"}}
- id: cors
  path: /v1/cors
  methods: [GET]
  public: true
  cors: {origins: ["https://app.example"], credentials: true}
  backends: [{name: b, service: svc, path: /cors}]
- id: who
  path: /v1/who
  methods: [GET]
  auth: [api_key, jwt]
  forward_scopes: true
  backends: [{name: b, service: svc, path: /echo/who}]
"""
PLANS = """\
plans:
  metered: {rate: {limit: 1000, per: second}, quota: {limit: 2, per: day}}
"""
AUTH = f"""\
auth:
  jwt:
    - {{issuer: "{ISSUER}", audience: tollway, hs256_secret_env: JWT_SECRET, default_plan: metered}}
    - {{issuer: "{OTHER_ISSUER}", audience: tollway, hs256_secret_env: JWT_SECRET, default_plan: metered}}
"""


# Canned JSON answers of the recording backend, by name (`/json/<name>`).
JSON_ANSWERS = {
    "user": b'{"id": "u1"}',
    "empty": b'{"id": ""}',
    "big": b'{"id": "u1", "n": 18446744073709551616, "neg": -9223372036854775809,'
    b' "max": 18446744073709551615, "deep": [{"n": 100000000000000000000000000001}], "f": 1.5}',
}


@dataclass
class Seen:
    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def names(self) -> list[str]:
        return [k for k, _ in self.headers]

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


@dataclass
class Backend:
    """Records each request exactly as it arrived, then answers by path (see `_answer`)."""

    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.seen.append(
            Seen(
                scope["method"],
                scope["raw_path"].decode("latin-1"),
                scope["query_string"].decode("latin-1"),
                headers,
                body,
            )
        )
        status, out, payload = await self._answer(scope["path"], dict(headers), body)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    async def _answer(
        path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        json_type = (b"content-type", b"application/json")
        if path.startswith("/neg/"):
            # Gzip for whoever accepts it; `/neg/vary` says so in Vary, `/neg/silent` does not.
            out = [json_type, (b"vary", b"Accept-Encoding")] if path == "/neg/vary" else [json_type]
            if "gzip" in headers.get("accept-encoding", ""):
                return 200, [*out, (b"content-encoding", b"gzip")], gzip.compress(b'{"enc":"gzip"}')
            return 200, out, b'{"enc":"identity"}'
        if path == "/deny":
            return (
                401,
                [
                    json_type,
                    (b"set-cookie", b"session=; Max-Age=0; Path=/"),
                    (b"www-authenticate", b'Bearer realm="backend"'),
                    (b"server", b"internal-auth/1.4 (ip-10-0-3-7.ec2.internal)"),
                    (b"x-powered-by", b"Express"),
                    (b"via", b"1.1 ip-10-0-3-7.ec2.internal"),
                    (b"tollway-partial", b"forged"),
                    (b"x-backend-reason", b"expired"),
                ],
                b'{"error":"session expired"}',
            )
        if path == "/cors":
            # A backend that does CORS its own way: any origin, with credentials.
            origin = headers.get("origin", "*").encode()
            allow = [(b"access-control-allow-origin", origin), (b"access-control-allow-credentials", b"true")]
            return 200, [json_type, *allow], b'{"secret":"for app.example only"}'
        if path.startswith("/reflect/"):
            # Everything it received but the fill's own request id: the poisoning backend.
            reflected = {k: v for k, v in headers.items() if k != "x-request-id"}
            return 200, [json_type], orjson.dumps({"headers": reflected, "body": body.decode("latin-1")})
        if path.startswith("/json/"):
            return 200, [json_type], JSON_ANSWERS[path.removeprefix("/json/")]
        if path.startswith("/slow/"):
            await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
        return 200, [json_type], b'{"ok":true}'


class FileServer:
    """`http.server` serving `root`: it percent-decodes the path and normalises `..`."""

    def __init__(self, root: Path) -> None:
        handler = partial(_QuietFiles, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.paths: list[str] = []
        self.server.paths = self.paths  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name]
        return ", ".join(found) if found else None

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Gateway:
    via: str
    backend: Backend
    files: FileServer
    infra: Path
    send: Callable[..., Answer]

    def key(self, capsys, consumer: str) -> str:
        capsys.readouterr()
        argv = ["keys", "create", "--consumer", consumer, "--plan", "metered", "--json"]
        assert main([*argv, "--infra", str(self.infra)]) == 0
        return json.loads(capsys.readouterr().out)["key"]


def token(sub: str, issuer: str = ISSUER, **claims: Any) -> str:
    import time

    now = int(time.time())
    body = {"iss": issuer, "aud": "tollway", "sub": sub, "exp": now + 600, **claims}
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def build(via: str, aws: dict[str, str], serve, tmp_path: Path, monkeypatch) -> Iterator[Gateway]:
    folder = tmp_path / "www"
    (folder / "public").mkdir(parents=True)
    (folder / "public" / "readme.txt").write_bytes(b"public text")
    (folder / "public" / "docs").mkdir()
    (folder / "public" / "docs" / "a b.txt").write_bytes(b"nested public text")
    (folder / "secret.txt").write_bytes(SECRET_TEXT)
    files = FileServer(folder)
    backend = Backend()
    infra = write_infra(tmp_path, {"svc": serve(backend), "files": files.url}, ROUTES, auth=AUTH, plans=PLANS)
    environ = {**aws, "JWT_SECRET": JWT_SECRET, "TOLLWAY_STAGE": "dev"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.chdir(tmp_path)  # away from a developer's .tollway/dev.env
    if via == "uvicorn":
        # As `tollway dev` serves it: uvicorn's own proxy-header handling off.
        url = serve(build_app(Settings.from_environ(os.environ, infra)), proxy_headers=False)
        send = partial(over_socket, url)
    else:
        send = partial(as_event, load_router().handler)
    try:
        yield Gateway(via, backend, files, infra, send)
    finally:
        files.stop()


def over_socket(
    url: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]] = (),
    body: bytes = b"",
    host: str | None = None,
) -> Answer:
    """One HTTP/1.1 request, byte for byte as given (no client normalises the target)."""
    parts = urlsplit(url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_answer(data)


def parse_answer(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = [(k.strip().lower(), v.strip()) for k, _, v in (f.partition(":") for f in fields)]
    return Answer(int(status_line.split(" ")[1]), headers, body)


def as_event(
    handler,
    method: str,
    target: str,
    headers: list[tuple[str, str]] = (),
    body: bytes = b"",
    host: str | None = None,
) -> Answer:
    """The API Gateway v2 event for the same request (repeated fields joined, as it does)."""
    event = copy.deepcopy(GET_EVENT)
    path, _, query = target.partition("?")
    event["rawPath"] = path
    event["rawQueryString"] = query
    event.pop("queryStringParameters", None)
    event.pop("cookies", None)
    joined: dict[str, str] = {"host": host or "abc123xyz.execute-api.us-east-1.amazonaws.com"}
    for name, value in headers:
        name = name.lower()
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    event["headers"] = joined
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["path"] = path
    if body:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    result = handler(event, Context())
    out = [(k.lower(), v) for k, v in result.get("headers", {}).items()]
    out += [(k.lower(), v) for k, values in result.get("multiValueHeaders", {}).items() for v in values]
    out += [("set-cookie", c) for c in result.get("cookies", [])]
    raw = result.get("body", "")
    payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
    return Answer(result["statusCode"], out, payload)
