"""DynamoDB throttles, fails or hangs: the documented answers, through the whole gateway.

| fault during the request | quota_failure: open | quota_failure: closed |
| key cached, JWT          | 200 (uncounted)     | 503 + Retry-After     |
| key not yet cached       | 503                 | 503                   |
After the fault, the key that could not be read works (it was not cached as unknown).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx
import jwt
import pytest
from tollway.auth.keys import key_hash
from tollway.auth.store import new_record
from tollway.tools.keystore import KeyStore

from tests.backends import loopback_backend
from tests.infra_files import write_infra
from tests.issued import new_key

from .conftest import DynamoFront, assemble

SECRET = "a-fault-injection-secret-of-32-bytes"
ROUTES = """\
- id: open
  path: /v1/open
  methods: [GET]
  auth: [api_key, jwt]
  quota_failure: open
  timeout_ms: 400
  backends: [{name: b, service: svc, path: /echo/open}]
- id: closed
  path: /v1/closed
  methods: [GET]
  auth: [api_key, jwt]
  quota_failure: closed
  timeout_ms: 400
  backends: [{name: b, service: svc, path: /echo/closed}]
- id: short
  path: /v1/short
  methods: [GET]
  auth: [api_key, jwt]
  quota_failure: closed
  timeout_ms: 300
  backends: [{name: b, service: svc, path: /echo/short}]
"""
AUTH = """\
auth:
  jwt:
    - {issuer: "https://faults.local/", audience: tollway, hs256_secret_env: FAULTS_JWT_SECRET}
"""


def issue(moto_url: str, table: str, aws: dict[str, str]) -> str:
    key, key_id = new_key(aws)
    store = KeyStore(boto3.client("dynamodb", endpoint_url=moto_url), table)
    store.put(new_record(key_hash(key), key_id, "acme", "free", [], datetime.now(UTC), None))
    return key


@pytest.fixture
def gateway(aws, moto_url, serve, tmp_path: Path, dynamo_front: DynamoFront):
    infra = write_infra(tmp_path, {"svc": serve(loopback_backend)}, ROUTES, auth=AUTH)
    app = assemble(infra, aws, dynamo_front.url, {"FAULTS_JWT_SECRET": SECRET})
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://gw.test")
    return client, lambda: issue(moto_url, aws["TOLLWAY_KEYS_TABLE"], aws)


def token() -> str:
    claims = {
        "iss": "https://faults.local/",
        "aud": "tollway",
        "sub": "jwt-user",
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "x-request-id" in response.headers
    return response.json()


@pytest.mark.parametrize("fault", ["throttle", "error", "hang"])
async def test_a_cached_key_follows_the_routes_quota_failure_policy(gateway, dynamo_front, fault) -> None:
    client, issue_key = gateway
    key = {"x-api-key": issue_key()}
    assert (await client.get("/v1/open", headers=key)).status_code == 200  # the key is now cached
    dynamo_front.mode = fault
    started = time.monotonic()
    opened = await client.get("/v1/open", headers=key)
    assert opened.status_code == 200
    assert "ratelimit-policy" in opened.headers and "ratelimit" not in opened.headers  # not counted
    closed = await client.get("/v1/closed", headers=key)
    assert_problem(closed, 503)
    assert closed.headers["retry-after"] == "1"
    # Each request waited at most what was left of its route's 400 ms deadline.
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("fault", ["throttle", "error", "hang"])
async def test_an_uncached_key_is_503_then_works_once_dynamodb_recovers(gateway, dynamo_front, fault) -> None:
    client, issue_key = gateway
    key = {"x-api-key": issue_key()}
    dynamo_front.mode = fault
    body = assert_problem(await client.get("/v1/open", headers=key), 503)
    assert "unavailable" in body["detail"]
    dynamo_front.mode = "pass"
    assert (await client.get("/v1/open", headers=key)).status_code == 200


@pytest.mark.parametrize("fault", ["throttle", "error", "hang"])
async def test_a_jwt_needs_dynamodb_only_for_the_quota(gateway, dynamo_front, fault) -> None:
    client, _ = gateway
    bearer = {"authorization": f"Bearer {token()}"}
    dynamo_front.mode = fault
    assert (await client.get("/v1/open", headers=bearer)).status_code == 200
    assert_problem(await client.get("/v1/closed", headers=bearer), 503)


@pytest.mark.parametrize("credential", ["key", "jwt"])
async def test_a_silent_dynamodb_costs_a_request_its_deadline_not_more(gateway, dynamo_front, credential):
    """`timeout_ms: 300` and DynamoDB accepting but never answering: 503 at ~300 ms, both for
    an uncached key's lookup and for the quota call (no fixed 1 s per call, no retry after)."""
    client, issue_key = gateway
    headers = {"x-api-key": issue_key()} if credential == "key" else {"authorization": f"Bearer {token()}"}
    dynamo_front.mode = "hang"
    started = time.monotonic()
    assert_problem(await client.get("/v1/short", headers=headers), 503)
    assert time.monotonic() - started < 0.8
