"""Reading the credential off a request, route kinds, plans and scopes -> 401 / 403."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import jwt
import pytest
from tollway.auth.authenticator import GatewayAuthenticator, presented
from tollway.auth.jwt import build_jwt_verifier
from tollway.auth.keys import KeyVerifier, key_hash
from tollway.auth.store import new_record
from tollway.config.compile import compile_infra
from tollway.config.models import ApiKeys, JwtIssuer
from tollway.core.context import Context
from tollway.core.messages import Request, Response
from tollway.core.principal import Principal
from tollway.errors import Forbidden, Unauthorized
from tollway.pipeline import authorize
from tollway.transport.exchange import AiohttpExchanger

from ...conftest import INFRA
from .helpers import HS_SECRET, MAC, MemoryStore, claims

DEV = "https://dev.tollway.local/"
CONFIG = compile_infra(INFRA, "dev", {})
ROUTE = next(r for r in CONFIG.routes if r.id == "users.get")  # auth: [api_key, jwt], scopes: [users:read]


def request(**headers: str) -> Request:
    return Request(
        "GET",
        "/v1/users/1",
        b"",
        {k.replace("_", "-"): v for k, v in headers.items()},
        b"",
        "127.0.0.1",
        "http",
        "rid",
    )


def authenticator(*records, plans=("free", "pro")) -> tuple[GatewayAuthenticator, MemoryStore]:
    store = MemoryStore(*records)
    issuer = JwtIssuer(issuer=DEV, audience="tollway", hs256_secret_env="S", plan_claim="plan")
    tokens = build_jwt_verifier((issuer,), {"S": HS_SECRET}, AiohttpExchanger())
    return GatewayAuthenticator(KeyVerifier(store, ApiKeys(), mac=MAC), tokens, plans), store


def issue(plan: str = "free", scopes=("users:read",)) -> tuple[str, object]:
    key, key_id = MAC.new_key()
    return key, new_record(key_hash(key), key_id, "acme", plan, scopes, datetime.now(UTC), None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"x-api-key": " k1 "}, ("api_key", "k1")),
        ({"authorization": "Bearer k1"}, ("api_key", "k1")),
        ({"authorization": "bearer   eyJa.b.c"}, ("jwt", "eyJa.b.c")),
        ({"x-api-key": "k1", "authorization": "Bearer k1"}, ("api_key", "k1")),
        ({"x-api-key": "k1", "authorization": "Basic dTpw"}, ("api_key", "k1")),
    ],
)
def test_the_credential_is_read_from_x_api_key_or_a_bearer_header(headers, expected):
    assert presented(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer"},
        {"authorization": "Basic dTpw"},
        {"x-api-key": "k1", "authorization": "Bearer k2"},
        {"x-api-key": "k" * 9000},
    ],
)
def test_unusable_credential_headers_are_401(headers):
    with pytest.raises(Unauthorized) as caught:
        presented(headers)
    assert caught.value.headers["www-authenticate"].startswith('Bearer realm="tollway"')


async def test_no_credential_is_401_with_a_bare_challenge():
    auth, _ = authenticator()
    with pytest.raises(Unauthorized) as caught:
        await auth.authenticate(request(), ROUTE)
    assert caught.value.headers["www-authenticate"] == 'Bearer realm="tollway"'
    assert caught.value.detail == "this route needs an API key or a JWT"


async def test_an_api_key_becomes_a_principal():
    key, record = issue()
    auth, _ = authenticator(record)
    principal = await auth.authenticate(request(x_api_key=key), ROUTE)
    assert principal == Principal("acme", "free", frozenset({"users:read"}), "api_key", record.key_id)


async def test_a_jwt_becomes_a_principal_with_its_plan_claim():
    token = jwt.encode(claims(DEV, sub="bob", scope="users:read", plan="pro"), HS_SECRET, algorithm="HS256")
    auth, _ = authenticator()
    principal = await auth.authenticate(request(authorization=f"Bearer {token}"), ROUTE)
    assert principal == Principal("https://dev.tollway.local/|bob", "pro", frozenset({"users:read"}), "jwt")


async def test_a_credential_kind_the_route_does_not_accept_costs_no_lookup():
    key, record = issue()
    auth, store = authenticator(record)
    jwt_only = dataclasses.replace(ROUTE, auth=frozenset({"jwt"}))
    with pytest.raises(Unauthorized, match="accepts a JWT, not an API key"):
        await auth.authenticate(request(x_api_key=key), jwt_only)
    assert store.reads == 0
    token = jwt.encode(claims(DEV), HS_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="accepts an API key, not a JWT"):
        await auth.authenticate(
            request(authorization=f"Bearer {token}"), dataclasses.replace(ROUTE, auth=frozenset({"api_key"}))
        )


async def test_an_unknown_plan_is_403():
    key, record = issue(plan="gold")
    auth, _ = authenticator(record)
    with pytest.raises(Forbidden, match="plan 'gold' is not offered"):
        await auth.authenticate(request(x_api_key=key), ROUTE)
    token = jwt.encode(claims(DEV, plan="platinum"), HS_SECRET, algorithm="HS256")
    with pytest.raises(Forbidden, match="plan 'platinum' is not offered"):
        await auth.authenticate(request(authorization=f"Bearer {token}"), ROUTE)


async def test_a_missing_scope_is_403_with_an_insufficient_scope_challenge():
    async def upstream(ctx: Context) -> Response:
        return Response(200)

    step = authorize(upstream)
    ctx = Context(request(), ROUTE, {}, 0.0, principal=Principal("acme", "free", frozenset({"x"}), "api_key"))
    with pytest.raises(Forbidden) as caught:
        await step(ctx)
    assert caught.value.detail == "missing scope: users:read"
    assert 'error="insufficient_scope", scope="users:read"' in caught.value.headers["www-authenticate"]
    ctx.principal = Principal("acme", "free", frozenset({"users:read", "x"}), "api_key")
    assert (await step(ctx)).status == 200
