"""The shop: one gateway with a route for every way the meter can be met, for the meter's tests.

`open_shop` builds the app as build_app wires it (API keys, quota counters and the usage queue
in the moto server, JWTs of a dev issuer), serves it under uvicorn in front of the scripted
chat backend (tests/meter.py) and a dead one, and tees its usage events. `REFUSALS` sends one
request for each kind of refusal the gateway makes by itself (docs/metering.md, "What is
charged"), with the status it must get.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt
from tollway.assemble import build_app
from tollway.auth.keys import key_hash
from tollway.auth.store import ACTIVE, KeyRecord
from tollway.dev.serve import free_port
from tollway.http.app import GatewayApp
from tollway.settings import Settings
from tollway.tools.keystore import KeyStore

from tests.issued import new_key
from tests.meter import Scripted, Tee, used

SECRET = "a-dev-secret-for-the-refusal-tests-32b"
ISSUER = "https://refusals.tollway.local/"
COST = 2

GATEWAY = """\
stages:
  dev:
    services:
      shop: "{shop}"
      dead: "{dead}"
  prod:
    services:
      shop: "https://shop.example.com"
      ghost: "https://ghost.example.com"
defaults: {{timeout_ms: 3000, max_body_bytes: 200000}}
auth:
  jwt:
    - issuer: "{issuer}"
      audience: tollway
      hs256_secret_env: REFUSALS_JWT_SECRET
      default_plan: shop
"""
ROUTES = """\
team: shop
routes:
  - id: items.get
    path: /v1/items/{id}
    methods: [GET]
    auth: [api_key, jwt]
    scopes: [items:read]
    cost: 2
    cors: {origins: ["https://app.example"]}
    backends: [{name: item, service: shop, path: "/items/{id}"}]
  - id: tenants.get
    path: /v1/tenants/{t}
    methods: [GET]
    auth: [api_key]
    cost: 2
    backends: [{name: t, service: shop, path: /tenant, headers: {x-tenant: "{t}"}}]
  - id: combo.get
    path: /v1/combo/{section}
    methods: [GET]
    auth: [api_key]
    cost: 2
    compose: group
    backends:
      - {name: first, service: shop, path: /first}
      - {name: second, service: shop, path: "/second/{first.id}/{section}"}
  - id: orders.post
    path: /v1/orders
    methods: [POST]
    auth: [api_key, jwt]
    cost: 2
    validate:
      body:
        type: object
        required: [items]
        properties:
          items:
            type: array
            items: {type: object, required: [sku, qty], properties: {qty: {type: integer}}}
      query: {type: object, properties: {limit: {type: integer, maximum: 10}}}
    backends: [{name: o, service: shop, path: /orders}]
  - id: orders.rushed
    path: /v1/rushed
    methods: [POST]
    auth: [jwt]
    cost: 2
    timeout_ms: 1
    quota_failure: open
    validate:
      body:
        type: object
        properties:
          items:
            type: array
            items: {type: object, required: [sku, qty], properties: {qty: {type: integer}}}
    backends: [{name: o, service: shop, path: /orders}]
  - id: internal.get
    path: /v1/internal
    methods: [GET]
    auth: [api_key]
    cost: 2
    ip: {deny: [127.0.0.0/8]}
    backends: [{name: i, service: shop, path: /internal}]
  - id: tokens.only
    path: /v1/tokens-only
    methods: [GET]
    auth: [jwt]
    cost: 2
    backends: [{name: t, service: shop, path: /t}]
  - id: dead.get
    path: /v1/dead
    methods: [GET]
    auth: [api_key]
    cost: 2
    backends: [{name: d, service: dead, path: /d, breaker: {failures: 1, cooldown_s: 600}}]
  - id: dead.public
    path: /v1/dead-public
    methods: [GET]
    public: true
    backends: [{name: d, service: dead, path: /d, breaker: {failures: 1, cooldown_s: 600}}]
  - id: ghost.get
    path: /v1/ghost
    methods: [GET]
    auth: [api_key]
    cost: 2
    backends: [{name: g, service: ghost, path: /g}]
  - id: chat
    path: /v1/chat
    methods: [POST]
    auth: [api_key]
    metering: {units: usage.total_tokens, reserve: 40, missing: 5}
    backends: [{name: chat, service: shop, path: /chat}]
  - id: chat.estimated
    path: /v1/chat/estimated
    methods: [POST]
    auth: [api_key]
    timeout_ms: 400
    metering: {units: "1.5 * usage.total_tokens", estimate: {field: max_tokens, weight: 2, plus: 5}}
    backends: [{name: chat, service: shop, path: /chat}]
  - id: items.open
    path: /v1/open/{id}
    methods: [GET]
    auth: [api_key]
    cost: 2
    quota_failure: open
    backends: [{name: item, service: shop, path: "/items/{id}"}]
  - id: free.get
    path: /v1/free/{id}
    methods: [GET]
    auth: [api_key]
    cost: 0
    backends: [{name: f, service: shop, path: "/free/{id}"}]
"""
PLANS = """\
plans:
  shop: {rate: {limit: 1000, per: second}, quota: {limit: 1000, per: day}}
  tiny: {quota: {limit: 2, per: day}}
  slow: {rate: {limit: 1, per: minute}, quota: {limit: 1000, per: day}}
  small: {quota: {limit: 60, per: day}}
  both: {rate: {limit: 1000, per: second}, quota: {limit: 80, per: day}}
  month: {quota: {limit: 100, per: month}}
  rateonly: {rate: {limit: 1000, per: second}}
  sharded: {rate: {limit: 1000, per: second}, quota: {limit: 80, per: day}, shards: 2}
"""
# The plans the meter's state machine gives its consumers: (quota, has a rate limit).
QUOTAS = {"small": (60, False), "both": (80, True), "month": (100, False), "rateonly": (None, True)}


@dataclass
class Shop:
    url: str
    app: GatewayApp
    tee: Tee
    backend: Scripted
    aws: dict[str, str]
    consumer: str
    plan: str = "shop"  # the plan of the keys `key` issues, unless told

    def key(self, plan: str | None = None, scopes: tuple[str, ...] = ("items:read",)) -> str:
        key, key_id = new_key()
        record = KeyRecord(
            key_hash=key_hash(key),
            key_id=key_id,
            consumer=self.consumer,
            plan=plan or self.plan,
            scopes=scopes,
            status=ACTIVE,
            created_at=datetime.now(UTC).isoformat(),
        )
        KeyStore(boto3.client("dynamodb"), self.aws["TOLLWAY_KEYS_TABLE"]).put(record)
        return key

    def token(self) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "tollway", "sub": self.consumer, "exp": now + 600, "iat": now}
        return jwt.encode(claims | {"scope": "items:read"}, SECRET, algorithm="HS256")

    def used(self) -> int:
        return used(boto3.client("dynamodb"), self.aws["TOLLWAY_QUOTA_TABLE"], self.consumer)


def write_shop(root: Path, shop_url: str, dead_url: str, plans: str = PLANS) -> Path:
    infra = root / "infra"
    (infra / "routes").mkdir(parents=True)
    (infra / "gateway.yaml").write_text(GATEWAY.format(shop=shop_url, dead=dead_url, issuer=ISSUER))
    (infra / "plans.yaml").write_text(plans)
    (infra / "routes" / "shop.yaml").write_text(textwrap.dedent(ROUTES))
    return infra


def open_shop(
    aws, serve, tmp_path: Path, monkeypatch, environ: dict[str, str] | None = None, plans: str = PLANS
) -> Shop:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    backend = Scripted()
    infra = write_shop(tmp_path, serve(backend), f"http://127.0.0.1:{free_port()}", plans)
    env = {**os.environ, **aws, "REFUSALS_JWT_SECRET": SECRET, **(environ or {})}
    app = build_app(Settings.from_environ(env, infra))
    tee = app.gateway.usage = Tee(app.gateway.usage)
    return Shop(serve(app), app, tee, backend, aws, f"c-{uuid.uuid4().hex[:10]}")


def truncated(shop: Shop, headers: dict[str, str]) -> int | None:
    """A body that stops before its declared end: the caller half-closes after 10 of 100 bytes
    (once the app is reading the body: a connection that ends before the server has passed the
    request to the app never reaches a route)."""
    port = int(shop.url.rsplit(":", 1)[1])
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"POST /v1/orders HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n{head}"
            "content-length: 100\r\n\r\n".encode()
            + b'{"items": '
        )
        time.sleep(0.05)
        conn.shutdown(socket.SHUT_WR)
        answer = conn.recv(65536)
    return int(answer.split()[1]) if answer else None


Send = Callable[[httpx.Client, Shop, dict[str, str]], Any]
ORDER = {"items": [{"sku": "a", "qty": 1}]}
RUSHED = {"items": [{"sku": f"s{i}", "qty": i} for i in range(4000)]}  # validating takes > 1 ms


def keyed(method: str, path: str, key: Callable[[Shop], str] = Shop.key, **more: Any) -> Send:
    return lambda h, s, r: h.request(method, path, headers=r | {"x-api-key": key(s)}, **more)


def sent(method: str, path: str, headers: Callable[[Shop], dict[str, str]], **more: Any) -> Send:
    return lambda h, s, r: h.request(method, path, headers=r | headers(s), **more)


PREFLIGHT = {"origin": "https://app.example", "access-control-request-method": "GET"}

# (kind of refusal, how it is sent, the status (or the statuses it may be; None: no answer
# read), whether it reaches a route (an event))
REFUSALS: list[tuple[str, Send, int | tuple[int, ...] | None, bool]] = [
    ("path-value", keyed("GET", "/v1/items/a%2Fb"), 400, True),
    ("header-value", keyed("GET", "/v1/tenants/a%0Db"), 400, True),
    ("composed-path-value", keyed("GET", "/v1/combo/a%2Fb"), 400, True),
    ("query", keyed("POST", "/v1/orders?limit=99", json=ORDER), 400, True),
    ("body", keyed("POST", "/v1/orders", json={"items": "x"}), 400, True),
    ("body-limit", keyed("POST", "/v1/orders", content=b"{" * 300_000), 413, True),
    ("truncated-body", lambda h, s, r: truncated(s, r | {"x-api-key": s.key()}), None, True),
    ("ip", keyed("GET", "/v1/internal"), 403, True),
    ("no-credentials", sent("GET", "/v1/items/1", lambda s: {}), 401, True),
    ("unknown-key", keyed("GET", "/v1/items/1", lambda s: s.key()[:-6] + "aaaaaa"), 401, True),
    ("credential-kind", keyed("GET", "/v1/tokens-only"), 401, True),
    ("scope", keyed("GET", "/v1/items/1", lambda s: s.key(scopes=())), 403, True),
    ("plan-not-offered", keyed("GET", "/v1/items/1", lambda s: s.key("gone")), 403, True),
    ("method", keyed("DELETE", "/v1/items/1"), 405, False),
    ("no-route", keyed("GET", "/v1/nothing"), 404, False),
    ("cors-preflight", sent("OPTIONS", "/v1/items/1", lambda s: PREFLIGHT), 204, False),
    (
        # 1 ms: the deadline passes while the body arrives (408) or while it is validated (504);
        # either way before any backend is called.
        "deadline-passed",
        sent("POST", "/v1/rushed", lambda s: {"authorization": f"Bearer {s.token()}"}, json=RUSHED),
        (408, 504),
        True,
    ),
    ("no-instance", keyed("GET", "/v1/ghost"), 502, True),
]
