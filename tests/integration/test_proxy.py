"""Proxy routes through the real ASGI app to a real loopback backend."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from tollway.assemble import build_app
from tollway.settings import Settings

from tests.backends import loopback_backend
from tests.infra_files import write_infra

ROUTES = """\
- id: echo
  path: /v1/echo/{thing}
  methods: [GET, POST]
  public: true
  backends:
    - {name: b, service: svc, path: "/echo/{thing}", query: {fixed: "1"}}
- id: slow
  path: /v1/slow
  methods: [GET]
  public: true
  timeout_ms: 300
  backends:
    - {name: b, service: svc, path: /slow, query: {ms: "2000"}}
- id: fail
  path: /v1/status/{code}
  methods: [GET]
  public: true
  backends:
    - {name: b, service: svc, path: "/status/{code}"}
- id: big
  path: /v1/big
  methods: [GET]
  public: true
  backends:
    - {name: b, service: svc, path: /big, query: {bytes: "3000000"}}
- id: down
  path: /v1/down
  methods: [GET]
  public: true
  backends:
    - {name: b, service: dead, path: /anything}
- id: private
  path: /v1/private
  methods: [GET]
  auth: [api_key]
  backends:
    - {name: b, service: svc, path: /echo}
"""


@pytest.fixture
def gateway(tmp_path: Path, serve) -> httpx.AsyncClient:
    backend = serve(loopback_backend)
    infra = write_infra(
        tmp_path,
        {"svc": backend, "dead": "http://127.0.0.1:9"},
        ROUTES,
        defaults="{timeout_ms: 3000, max_body_bytes: 1000, max_response_bytes: 2000000}",
    )
    app = build_app(Settings(infra=infra, stage="dev", environ={}))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 4711))
    return httpx.AsyncClient(transport=transport, base_url="https://gw.example.com")


def echoed(response: httpx.Response) -> dict:
    data = response.json()
    data["headers"] = dict(data["headers"])
    return data


async def test_proxy_forwards_path_query_body_and_gateway_headers(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/v1/echo/a%20b?x=1",
        content=b"\x00\x01payload",
        headers={
            "x-request-id": "req-123",
            "x-api-key": "secret-key",
            "authorization": "Bearer secret-token",
            "x-forwarded-for": "6.6.6.6",
            "connection": "x-private-hop",
            "x-private-hop": "should not pass",
            "te": "trailers",
            "x-custom": "kept",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-123"
    got = echoed(response)
    assert got["method"] == "POST"
    assert got["raw_path"] == "/echo/a%20b"
    assert got["query"] == "fixed=1&x=1"
    assert base64.b64decode(got["body"]) == b"\x00\x01payload"
    headers = got["headers"]
    assert headers["x-request-id"] == "req-123"
    assert headers["x-forwarded-for"] == "203.0.113.5"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == "gw.example.com"
    assert headers["x-custom"] == "kept"
    assert headers["host"].startswith("127.0.0.1:")
    for secret in ("x-api-key", "authorization", "x-private-hop", "te", "x-tollway-consumer"):
        assert secret not in headers


async def test_hop_by_hop_response_headers_are_dropped(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/echo/x")
    assert response.headers["x-backend"] == "echo"
    assert "x-hop" not in response.headers
    assert "keep-alive" not in response.headers


async def test_a_fresh_request_id_when_the_callers_is_not_sane(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/echo/x", headers={"x-request-id": "bad id\twith tabs"})
    rid = response.headers["x-request-id"]
    assert rid != "bad id\twith tabs" and len(rid) == 32
    assert dict(response.json()["headers"])["x-request-id"] == rid


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "request_id"}
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_not_found_and_method_not_allowed(gateway: httpx.AsyncClient) -> None:
    assert_problem(await gateway.get("/v1/nope"), 404)
    response = await gateway.delete("/v1/echo/x")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_body_over_the_limit_is_413(gateway: httpx.AsyncClient) -> None:
    assert_problem(await gateway.post("/v1/echo/x", content=b"x" * 1001), 413)
    assert (await gateway.post("/v1/echo/x", content=b"x" * 1000)).status_code == 200


async def loopback_backend_error_status_passes_through_on_proxy(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/status/503")
    assert response.status_code == 503  # proxy passes the backend's answer through


async def test_deadline_is_504_on_time(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/slow")
    body = assert_problem(response, 504)
    assert "stack" not in json.dumps(body)


async def test_unreachable_backend_is_502(gateway: httpx.AsyncClient) -> None:
    body = assert_problem(await gateway.get("/v1/down"), 502)
    assert "127.0.0.1" not in body["detail"]


async def test_response_over_the_lambda_limit_is_a_clean_502(gateway: httpx.AsyncClient) -> None:
    assert_problem(await gateway.get("/v1/big"), 502)


async def test_protected_route_without_credentials_is_401(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/private")
    assert_problem(response, 401)
    assert "www-authenticate" in response.headers


async def test_head_on_a_get_route(gateway: httpx.AsyncClient) -> None:
    response = await gateway.head("/v1/echo/x")
    assert response.status_code == 200
    assert response.content == b""


async def test_log_lines_carry_the_request_id_as_correlation_id(gateway: httpx.AsyncClient) -> None:
    import io
    import logging

    from tollway.observability import logger

    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger("tollway").addHandler(handler)
    try:
        await gateway.get("/v1/echo/x", headers={"x-request-id": "corr-1"})
        await gateway.get("/v1/nope", headers={"x-request-id": "corr-2"})
    finally:
        logging.getLogger("tollway").removeHandler(handler)
    lines = [json.loads(line) for line in records.getvalue().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["message"] == "access"]
    assert [(a["correlation_id"], a["status"]) for a in access] == [("corr-1", 200), ("corr-2", 404)]
