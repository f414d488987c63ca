"""Nothing the gateway refuses by itself is charged or counted (issue 19, item 2).

Every kind of refusal the gateway makes before calling a backend (docs/metering.md, "What is
charged"), each through the app as build_app wires it (keys, quota and usage queue in the
moto server, JWTs of a dev issuer) under uvicorn, in front of a real loopback backend: the
consumer's counter does not move, the request's usage event says `admitted: false` with
`cost_units: 0` (or there is none, for a request that matched no route), and the backend
never sees it. Then what a backend's error answer costs on a metered route.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
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
import pytest
from tollway.assemble import build_app
from tollway.auth.keys import key_hash
from tollway.auth.store import ACTIVE, KeyRecord, KeyStore
from tollway.dev.serve import free_port
from tollway.http.app import GatewayApp
from tollway.settings import Settings

from tests.issued import new_key
from tests.meter import Scripted, Tee, settled, used, wait_for

from .test_failures import fault_server

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
"""
PLANS = """\
plans:
  shop: {rate: {limit: 1000, per: second}, quota: {limit: 1000, per: day}}
  tiny: {quota: {limit: 2, per: day}}
  slow: {rate: {limit: 1, per: minute}, quota: {limit: 1000, per: day}}
"""


@dataclass
class Shop:
    url: str
    app: GatewayApp
    tee: Tee
    backend: Scripted
    aws: dict[str, str]
    consumer: str

    def key(self, plan: str = "shop", scopes: tuple[str, ...] = ("items:read",)) -> str:
        key, key_id = new_key()
        record = KeyRecord(
            key_hash=key_hash(key),
            key_id=key_id,
            consumer=self.consumer,
            plan=plan,
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


def write_shop(root: Path, shop_url: str, dead_url: str) -> Path:
    infra = root / "infra"
    (infra / "routes").mkdir(parents=True)
    (infra / "gateway.yaml").write_text(GATEWAY.format(shop=shop_url, dead=dead_url, issuer=ISSUER))
    (infra / "plans.yaml").write_text(PLANS)
    (infra / "routes" / "shop.yaml").write_text(textwrap.dedent(ROUTES))
    return infra


def open_shop(aws, serve, tmp_path: Path, monkeypatch, environ: dict[str, str] | None = None) -> Shop:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    backend = Scripted()
    infra = write_shop(tmp_path, serve(backend), f"http://127.0.0.1:{free_port()}")
    env = {**os.environ, **aws, "REFUSALS_JWT_SECRET": SECRET, **(environ or {})}
    app = build_app(Settings.from_environ(env, infra))
    tee = app.gateway.usage = Tee(app.gateway.usage)
    return Shop(serve(app), app, tee, backend, aws, f"c-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def shop(aws, serve, tmp_path, monkeypatch) -> Shop:
    return open_shop(aws, serve, tmp_path, monkeypatch)


def truncated(shop: Shop, headers: dict[str, str]) -> int | None:
    """A body that stops before its declared end: the caller half-closes after 10 of 100 bytes."""
    port = int(shop.url.rsplit(":", 1)[1])
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"POST /v1/orders HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n{head}"
            "content-length: 100\r\n\r\n".encode()
            + b'{"items": '
        )
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

# (kind of refusal, how it is sent, the status, whether it reaches a route (an event))
REFUSALS: list[tuple[str, Send, int | None, bool]] = [
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
        "deadline-passed",
        sent("POST", "/v1/rushed", lambda s: {"authorization": f"Bearer {s.token()}"}, json=RUSHED),
        504,
        True,
    ),
    ("no-instance", keyed("GET", "/v1/ghost"), 502, True),
]


@pytest.mark.parametrize(("kind", "send", "status", "routed"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refusal_of_the_gateway_is_neither_charged_nor_counted(
    shop: Shop, kind: str, send: Send, status: int | None, routed: bool
) -> None:
    rid = uuid.uuid4().hex
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        answer = send(http, shop, {"x-request-id": rid})
    got = answer if isinstance(answer, int | None) else answer.status_code
    if status is not None:
        assert got == status, answer.text
    mine = lambda: [e for e in shop.tee.events if e["request_id"] == rid]  # noqa: E731
    events = wait_for(lambda: mine() or not routed, what="the event")
    if routed:
        (event,) = events
        assert (event["admitted"], event["cost_units"]) == (False, 0), event
    else:
        assert not mine()
    settled(shop.app)
    assert shop.used() == 0
    assert shop.backend.bodies == []  # the backend never saw it


def test_limits_refuse_for_free(shop: Shop) -> None:
    """A 429 (quota or rate) is a refusal too: only the admitted request is charged."""
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        for plan in ("tiny", "slow"):
            key = shop.key(plan)
            answers = [http.get("/v1/items/1", headers={"x-api-key": key}) for _ in range(2)]
            assert [a.status_code for a in answers] == [200, 429]
    settled(shop.app)
    events = shop.tee.of(shop.consumer)
    assert [(e["admitted"], e["cost_units"]) for e in events] == [(True, 2), (False, 0)] * 2
    assert shop.used() == 4 == sum(e["cost_units"] for e in events)


def test_a_backend_whose_breaker_is_open_is_not_called_and_not_charged(shop: Shop) -> None:
    """The first request tries the dead backend (its connection is refused: a call, charged as
    any backend failure); that opens the breaker, and the next is refused without a call."""
    key = shop.key()
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        answers = [http.get("/v1/dead", headers={"x-api-key": key}) for _ in range(3)]
    assert [a.status_code for a in answers] == [502, 502, 502]
    assert "circuit open" in answers[1].json()["detail"]
    settled(shop.app)
    assert [(e["admitted"], e["cost_units"]) for e in shop.tee.of(shop.consumer)] == [
        (True, 2),
        (False, 0),
        (False, 0),
    ]
    assert shop.used() == 2


def test_a_request_refused_after_admission_without_a_backend_call_is_refunded(
    aws, serve, tmp_path, monkeypatch, moto_url
) -> None:
    """The breaker opens while the request's quota call is on the wire (DynamoDB slowed to
    300 ms): it passed the check before admission, was admitted and counted, then was refused
    without a call. Its units go back to the counter (a settle of -2) and nothing is billed."""
    with fault_server(failures=0, upstream=moto_url, delay_s=0.3) as slow:
        shop = open_shop(aws, serve, tmp_path, monkeypatch, {"AWS_ENDPOINT_URL_DYNAMODB": slow.url})
        key = shop.key()
        answers: list[httpx.Response] = []

        def call() -> None:
            with httpx.Client(base_url=shop.url, timeout=10) as http:
                answers.append(http.get("/v1/dead", headers={"x-api-key": key}))

        caller = threading.Thread(target=call)
        caller.start()
        wait_for(lambda: "UpdateItem" in slow.seen, what="the admission on the wire")
        with httpx.Client(base_url=shop.url, timeout=10) as http:
            assert http.get("/v1/dead-public").status_code == 502  # refused: the breaker opens
        caller.join()
        (answer,) = answers
        assert answer.status_code == 502 and "circuit open" in answer.json()["detail"]
        settled(shop.app)
        assert slow.seen.count("UpdateItem") == 2  # the admission, and its refund
    (event,) = shop.tee.of(shop.consumer)
    assert (event["admitted"], event["cost_units"]) == (False, 0)
    assert shop.used() == 0


@pytest.mark.parametrize(
    ("reply", "status", "charged"),
    [
        ({"status": 400, "usage": 9}, 400, 9),  # an error answer that says what it used
        ({"status": 400}, 400, 0),  # ... and one that does not: nothing, not `missing`
        ({"status": 503, "usage": 9}, 502, 0),  # a backend 5xx: the caller gets a 502, pays nothing
        ({"status": 200}, 200, 5),  # a success that does not say: the route's `missing`
        ({"status": 200, "usage": 31}, 200, 31),
    ],
    ids=["4xx-with-usage", "4xx-without", "5xx", "2xx-without", "2xx-with"],
)
def test_what_an_answer_costs_on_a_metered_route(
    shop: Shop, reply: dict, status: int, charged: int
) -> None:
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        answer = http.post("/v1/chat", json={"reply": reply}, headers={"x-api-key": shop.key()})
    assert answer.status_code == status
    settled(shop.app)
    (event,) = shop.tee.of(shop.consumer)
    assert (event["admitted"], event["cost_units"], event["reserved_units"]) == (True, charged, 40)
    assert shop.used() == charged
