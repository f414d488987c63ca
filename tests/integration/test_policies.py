"""Edge policies through the real app: CORS, IP allow/deny lists, request validation."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tollway.assemble import build_app
from tollway.settings import Settings

from tests.infra_files import write_infra

ROUTES = """\
- id: open
  path: /v1/open
  methods: [GET, POST]
  public: true
  backends: [{name: b, service: svc, path: /count}]
- id: office
  path: /v1/office
  methods: [GET]
  public: true
  ip: {allow: ["10.1.0.0/16"], deny: ["10.1.9.0/24"]}
  cors: false
  backends: [{name: b, service: svc, path: /count}]
- id: orders.create
  path: /v1/orders
  methods: [POST]
  public: true
  validate:
    body: {$ref: schemas/order.yaml}
    query: {type: object, properties: {dry_run: {type: boolean}, limit: {type: integer, maximum: 10}}}
  backends: [{name: b, service: svc, path: /count}]
"""
AUTH = """\
cors:
  origins: ["https://app.example.com"]
  methods: [GET, POST]
  credentials: true
  max_age_s: 300
ip:
  deny: ["192.0.2.0/24"]
"""
ORDER_SCHEMA = """\
type: object
required: [items]
additionalProperties: false
properties:
  items:
    type: array
    minItems: 1
    items:
      type: object
      required: [sku, qty]
      properties: {sku: {type: string}, qty: {type: integer, minimum: 1}}
"""


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"calls": self.calls}).encode()})


@pytest.fixture
def backend() -> Counter:
    return Counter()


def gateway_for(tmp_path: Path, url: str, client_ip: str) -> httpx.AsyncClient:
    infra = tmp_path / "infra"
    if not infra.exists():
        write_infra(tmp_path, {"svc": url}, ROUTES, auth=AUTH)
        (infra / "schemas").mkdir()
        (infra / "schemas" / "order.yaml").write_text(ORDER_SCHEMA)
    app = build_app(Settings(infra=infra, stage="dev", environ={}))
    transport = httpx.ASGITransport(app=app, client=(client_ip, 5000))
    return httpx.AsyncClient(transport=transport, base_url="https://gw.example.com")


@pytest.fixture
def gateway(tmp_path: Path, serve, backend: Counter):
    url = serve(backend)
    return lambda ip="198.51.100.1": gateway_for(tmp_path, url, ip)


async def test_preflight_is_answered_without_reaching_the_backend(gateway, backend: Counter) -> None:
    response = await gateway().options(
        "/v1/open",
        headers={"origin": "https://app.example.com", "access-control-request-method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert response.headers["access-control-max-age"] == "300"
    assert backend.calls == 0


async def test_preflight_from_an_unknown_origin_gets_no_grant(gateway) -> None:
    response = await gateway().options(
        "/v1/open", headers={"origin": "https://evil.example", "access-control-request-method": "GET"}
    )
    assert response.status_code == 204
    assert "access-control-allow-origin" not in response.headers


async def test_actual_response_carries_cors_fields_even_on_errors(gateway) -> None:
    ok = await gateway().get("/v1/open", headers={"origin": "https://app.example.com"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in ok.headers["access-control-expose-headers"]
    bad = await gateway().post("/v1/orders", content=b"{}", headers={"origin": "https://app.example.com"})
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == "https://app.example.com"


async def test_route_can_turn_cors_off(gateway) -> None:
    response = await gateway("10.1.2.3").get("/v1/office", headers={"origin": "https://app.example.com"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("ip", "status"),
    [("10.1.2.3", 200), ("10.1.9.9", 403), ("10.2.0.1", 403), ("192.0.2.7", 403), ("::ffff:10.1.2.3", 200)],
)
async def test_ip_rules(gateway, ip: str, status: int) -> None:
    response = await gateway(ip).get("/v1/office")
    assert response.status_code == status


async def test_spoofed_forwarded_for_is_ignored(gateway, backend: Counter) -> None:
    response = await gateway("203.0.113.50").get("/v1/office", headers={"x-forwarded-for": "10.1.2.3"})
    assert response.status_code == 403
    denied = await gateway("192.0.2.7").get("/v1/open", headers={"x-forwarded-for": "198.51.100.9"})
    assert denied.status_code == 403
    assert backend.calls == 0


@pytest.mark.parametrize(
    ("body", "query", "pointer"),
    [
        (b"{}", "", "/body"),
        (b'{"items": []}', "", "/body/items"),
        (b'{"items": [{"sku": "a", "qty": 0}]}', "", "/body/items/0/qty"),
        (b'{"items": [{"sku": "a", "qty": 1}], "extra": 1}', "", "/body"),
        (b'{"items": [{"sku": "a", "qty": 1}]}', "?limit=11", "/query/limit"),
        (b'{"items": [{"sku": "a", "qty": 1}]}', "?limit=many", "/query/limit"),
        (b"not json", "", None),
    ],
)
async def test_invalid_requests_are_400_with_a_pointer_and_reach_no_backend(
    gateway, backend: Counter, body: bytes, query: str, pointer: str | None
) -> None:
    response = await gateway().post(f"/v1/orders{query}", content=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem.get("pointer") == pointer
    assert backend.calls == 0


async def test_valid_request_passes(gateway, backend: Counter) -> None:
    response = await gateway().post(
        "/v1/orders?dry_run=true&limit=3", content=b'{"items": [{"sku": "a", "qty": 2}]}'
    )
    assert response.status_code == 200
    assert backend.calls == 1


def test_a_broken_schema_is_a_config_problem(tmp_path: Path) -> None:
    from tollway.config.compile import compile_infra
    from tollway.config.errors import ConfigError

    routes = """\
- id: r
  path: /r
  methods: [POST]
  public: true
  validate: {body: {type: nonsense}, query: {$ref: schemas/missing.json}}
  backends: [{name: b, service: svc, path: /x}]
"""
    infra = write_infra(tmp_path, {"svc": "http://127.0.0.1:9"}, routes)
    with pytest.raises(ConfigError) as info:
        compile_infra(infra, "dev", {}, tmp_path)
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 2
    assert messages[0].startswith("infra/routes/test.yaml:7: route r: validate.body: ")
    assert messages[1].startswith("infra/routes/test.yaml:7: route r: validate.query: ")
