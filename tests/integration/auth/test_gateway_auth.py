"""API keys and JWTs through the real ASGI app, a real echo backend and the moto server."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import boto3
import jwt
from tollway.auth.keys import KeyMac, key_hash, new_legacy_key
from tollway.auth.store import new_record
from tollway.tools.keystore import KeyStore

from tests.issued import new_key

from .conftest import DEV_ISSUER, HS_SECRET


def dev_token(**claims) -> str:
    now = int(time.time())
    body = {"iss": DEV_ISSUER, "aud": "tollway", "sub": "jwt-user", "exp": now + 60, **claims}
    return jwt.encode(body, HS_SECRET, algorithm="HS256")


def assert_problem(response, status: int, detail: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["request_id"] == response.headers["x-request-id"]
    if detail is not None:
        assert problem["detail"] == detail


async def test_a_key_from_the_cli_opens_its_route_and_never_reaches_the_backend(stack, capsys):
    key = stack.create_key(capsys, "--scopes", "things:read")["key"]
    for headers in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        response = await stack.client.get("/v1/things/7", headers=headers)
        assert response.status_code == 200, response.text
        seen = response.json()
        assert seen["x-tollway-consumer"] == "acme"
        assert "x-api-key" not in seen and "authorization" not in seen
        assert key not in str(seen)


async def test_missing_malformed_and_unknown_keys_are_401_with_a_challenge(stack):
    response = await stack.client.get("/v1/things/7")
    assert_problem(response, 401, "this route needs an API key")
    assert response.headers["www-authenticate"] == 'Bearer realm="tollway"'
    for key, detail in (("not-a-key", "malformed API key"), (new_key(stack.environ)[0], "unknown API key")):
        response = await stack.client.get("/v1/things/7", headers={"x-api-key": key})
        assert_problem(response, 401, detail)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_key_without_the_scope_is_403(stack, capsys):
    key = stack.create_key(capsys, "--scopes", "other:read")["key"]
    response = await stack.client.get("/v1/things/7", headers={"x-api-key": key})
    assert_problem(response, 403, "missing scope: things:read")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_route_for_jwts_refuses_a_key_and_accepts_a_token(stack, capsys):
    key = stack.create_key(capsys, "--scopes", "things:read")["key"]
    response = await stack.client.get("/v1/tokens", headers={"x-api-key": key})
    assert_problem(response, 401, "this route accepts a JWT, not an API key")
    token = dev_token(scope="things:read")
    response = await stack.client.get("/v1/tokens", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["x-tollway-consumer"] == f"{DEV_ISSUER}|jwt-user"
    assert token not in str(response.json())


async def test_expired_wrong_audience_and_scopeless_tokens(stack):
    for token, detail in (
        (dev_token(exp=int(time.time()) - 120), "token has expired"),
        (dev_token(aud="elsewhere"), "token is not meant for this audience"),
    ):
        response = await stack.client.get("/v1/either", headers={"authorization": f"Bearer {token}"})
        assert_problem(response, 401, detail)
    response = await stack.client.get("/v1/tokens", headers={"authorization": f"Bearer {dev_token()}"})
    assert_problem(response, 403, "missing scope: things:read")


async def test_a_revoked_key_stops_working_within_the_cache_ttl(stack, capsys):
    created = stack.create_key(capsys)
    headers = {"x-api-key": created["key"]}
    assert (await stack.client.get("/v1/either", headers=headers)).status_code == 200
    assert stack.cli("keys", "revoke", created["key_id"], capsys=capsys)[0] == 0
    revoked_at = time.monotonic()
    while (response := await stack.client.get("/v1/either", headers=headers)).status_code == 200:
        assert time.monotonic() - revoked_at < 1.5, "the revoked key still worked after the 1 s TTL"
        await asyncio.sleep(0.05)
    assert_problem(response, 401, "the API key has been revoked")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_miss_is_remembered_for_the_negative_ttl_then_read_again(stack):
    key, key_id = new_key(stack.environ)
    headers = {"x-api-key": key}
    assert_problem(await stack.client.get("/v1/either", headers=headers), 401, "unknown API key")
    record = new_record(key_hash(key), key_id, "late", "free", [], datetime.now(UTC), None)
    KeyStore(boto3.client("dynamodb"), stack.environ["TOLLWAY_KEYS_TABLE"]).put(record)
    stored_at = time.monotonic()
    while (response := await stack.client.get("/v1/either", headers=headers)).status_code == 401:
        assert time.monotonic() - stored_at < 1.5, "the miss was remembered beyond the 1 s negative TTL"
        await asyncio.sleep(0.05)
    assert response.status_code == 200 and response.json()["x-tollway-consumer"] == "late"
    assert time.monotonic() - stored_at > 0.5, "the miss was not remembered at all"


async def test_an_expiring_key_is_refused_once_it_expires(stack, capsys):
    created = stack.create_key(capsys, "--expires-in", "2s")
    headers = {"x-api-key": created["key"]}
    assert (await stack.client.get("/v1/either", headers=headers)).status_code == 200
    await asyncio.sleep(2.1)
    assert_problem(await stack.client.get("/v1/either", headers=headers), 401, "the API key has expired")


async def test_an_unknown_plan_on_a_key_is_403(stack, capsys):
    created = stack.create_key(capsys)
    boto3.client("dynamodb").update_item(
        TableName=stack.environ["TOLLWAY_KEYS_TABLE"],
        Key={"key_hash": {"S": key_hash(created["key"])}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "plan"},
        ExpressionAttributeValues={":p": {"S": "retired"}},
    )
    response = await stack.client.get("/v1/either", headers={"x-api-key": created["key"]})
    assert_problem(response, 403, "the credential's plan 'retired' is not offered by this gateway")


async def test_a_warm_container_reads_the_table_once_per_key_per_ttl(stack_factory, capsys):
    stack = stack_factory(cache_ttl_s=60)
    key = stack.create_key(capsys)["key"]
    stack.reads.clear()
    for _ in range(50):
        assert (await stack.client.get("/v1/either", headers={"x-api-key": key})).status_code == 200
    assert stack.reads == ["DynamoDB_20120810.GetItem"]
    stack.reads.clear()
    unknown = new_key(stack.environ)[0]
    for _ in range(50):
        assert (await stack.client.get("/v1/either", headers={"x-api-key": unknown})).status_code == 401
    assert len(stack.reads) == 1
    stack.reads.clear()
    for i in range(50):
        garbage = f"tw1_{'a' * 12}_{i:0>56}"
        assert (await stack.client.get("/v1/either", headers={"x-api-key": garbage})).status_code == 401
        token_like = "eyJ" + "x" * 20 + ".e30.sig"
        assert (await stack.client.get("/v1/either", headers={"x-api-key": token_like})).status_code == 401
        # Well-formed, signed, but not under this deployment's secret: refused unread.
        forged = KeyMac(b"a-secret-this-deployment-never-had").new_key()[0]
        response = await stack.client.get("/v1/either", headers={"x-api-key": forged})
        assert_problem(response, 401, "malformed API key")
    assert stack.reads == []


async def test_a_key_issued_before_the_mac_works_until_legacy_keys_is_off(stack_factory):
    legacy, key_id = new_legacy_key()
    stack = stack_factory()
    record = new_record(key_hash(legacy), key_id, "old-timer", "free", [], datetime.now(UTC), None)
    KeyStore(boto3.client("dynamodb"), stack.environ["TOLLWAY_KEYS_TABLE"]).put(record)
    response = await stack.client.get("/v1/either", headers={"x-api-key": legacy})
    assert response.status_code == 200 and response.json()["x-tollway-consumer"] == "old-timer"
    refusing = stack_factory(legacy_keys=False)
    response = await refusing.client.get("/v1/either", headers={"x-api-key": legacy})
    assert_problem(response, 401, "malformed API key")
    assert refusing.reads == []


async def test_the_production_gateway_refuses_the_demo_key_even_where_tollway_demo_key_names_it(
    stack_factory,
):
    """The router knows no demo: a table holding the demo key's hash and TOLLWAY_DEMO_KEY in
    its environment do not make `demo-key` a key (`tollway dev` swaps it for a real key in
    front of the gateway: tests/e2e/test_dev.py)."""
    record = new_record(key_hash("demo-key"), "demo", "demo", "free", [], datetime.now(UTC), None)
    KeyStore(boto3.client("dynamodb"), stack_factory().environ["TOLLWAY_KEYS_TABLE"]).put(record)
    named = stack_factory(environ={"TOLLWAY_DEMO_KEY": "demo-key"})
    for headers in ({"x-api-key": "demo-key"}, {"authorization": "Bearer demo-key"}):
        response = await named.client.get("/v1/either", headers=headers)
        assert_problem(response, 401, "malformed API key")
    assert named.reads == []
