"""Through the real ASGI app under uvicorn, to a real loopback backend, counting in moto.

Authentication is not under test here: a tiny authenticator stands in for it and returns
the principal a verified API key would.
"""

from __future__ import annotations

import json

import httpx
from tollway.config.compile import compile_infra
from tollway.core.messages import Request
from tollway.core.principal import Principal
from tollway.errors import Unauthorized
from tollway.gateway import Gateway
from tollway.http.app import GatewayApp
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore
from tollway.table.routes import CompiledRoute
from tollway.transport.exchange import AiohttpExchanger
from tollway.upstream.dispatch import HttpUpstream

from tests.conftest import INFRA
from tests.lean import dynamo_caller

from .conftest import Clock, Dynamo


async def backend(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"id": scope["path"].rsplit("/", 1)[-1], "name": "Ada"}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


class KeyHolders:
    """Accepts `X-API-Key: <consumer>` as that consumer on the `free` plan."""

    async def authenticate(
        self, request: Request, route: CompiledRoute, deadline: float | None = None
    ) -> Principal:
        consumer = request.headers.get("x-api-key")
        if not consumer:
            raise Unauthorized("no key")
        return Principal(consumer, "free", frozenset({"users:read", "profile:read"}), "api_key", "k")


def test_authenticated_route_spends_quota_and_public_route_does_not(
    moto_dynamo: Dynamo, consumer: str, serve
) -> None:
    config = compile_infra(INFRA, "dev", {"TOLLWAY_SERVICE_USERS": serve(backend)})
    dynamodb = moto_dynamo.client()
    # As build_app wires it: one exchanger for the backends and for DynamoDB.
    exchanger = AiohttpExchanger()
    caller = dynamo_caller(exchanger, dynamodb)
    gateway = Gateway(
        config,
        authenticator=KeyHolders(),
        upstream=HttpUpstream(exchanger),
        # A frozen clock, mid-window: all eleven requests meet the same 2 s rate window.
        admission=QuotaAdmission(
            QuotaStore(caller, moto_dynamo.table), config.plans, now=Clock(1_795_000_000.5)
        ),
    )
    url = serve(GatewayApp(gateway, on_shutdown=[exchanger.close]))

    def used() -> list[int]:
        return [int(i["used"]["N"]) for i in dynamodb.scan(TableName=moto_dynamo.table)["Items"]]

    with httpx.Client(base_url=url) as http:
        public = http.get("/v1/status")
        assert public.status_code == 200
        assert "ratelimit" not in public.headers
        assert used() == []

        answers = [http.get("/v1/users/7", headers={"x-api-key": consumer}) for _ in range(11)]
    # The free plan: 5/s with a burst of 10, 1000 units a day.
    assert [a.status_code for a in answers[:10]] == [200] * 10
    first = answers[0]
    assert first.json() == {"id": "7", "name": "Ada"}
    assert first.headers["ratelimit-policy"] == '"rate";q=5;w=1;tollway-burst=10, "quota";q=1000;w=86400'
    assert first.headers["ratelimit"] == '"rate";r=9;t=2, "quota";r=999;t=46400'

    rejected = answers[10]
    assert rejected.status_code == 429
    assert rejected.headers["content-type"] == "application/problem+json"
    assert rejected.headers["retry-after"] == "2"
    assert rejected.headers["ratelimit"] == '"rate";r=0;t=2, "quota";r=990;t=46400'
    assert rejected.headers["x-request-id"]
    problem = rejected.json()
    assert problem["status"] == 429 and "rate limit" in problem["detail"]
    assert problem["violated-policies"] == ["rate"]
    assert used() == [10]


async def boasting_backend(scope, receive, send) -> None:
    """Answers with RateLimit fields of its own, as a backend behind another limiter may."""
    if scope["type"] != "http":
        return
    head = [
        (b"content-type", b"application/json"),
        (b"ratelimit-policy", b'"backend";q=1000000;w=1'),
        (b"ratelimit", b'"backend";r=999999;t=1'),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    await send({"type": "http.response.body", "body": b'{"id": "7"}'})


def test_the_ratelimit_fields_a_caller_reads_are_the_gateways_alone(
    moto_dynamo: Dynamo, consumer: str, serve
) -> None:
    """The plan and admit steps write the RateLimit fields, in place of a backend's: a caller
    never reads a backend's limits as its plan's, nor two values of one field."""
    config = compile_infra(INFRA, "dev", {"TOLLWAY_SERVICE_USERS": serve(boasting_backend)})
    exchanger = AiohttpExchanger()
    admission = QuotaAdmission(
        QuotaStore(dynamo_caller(exchanger, moto_dynamo.client()), moto_dynamo.table),
        config.plans,
        now=Clock(1_795_000_000.5),
    )
    upstream = HttpUpstream(exchanger)
    gateway = Gateway(config, authenticator=KeyHolders(), upstream=upstream, admission=admission)
    url = serve(GatewayApp(gateway, on_shutdown=[exchanger.close]))
    with httpx.Client(base_url=url) as http:
        answer = http.get("/v1/users/7", headers={"x-api-key": consumer})
    assert answer.status_code == 200
    assert answer.headers.get_list("ratelimit-policy") == [
        '"rate";q=5;w=1;tollway-burst=10, "quota";q=1000;w=86400'
    ]
    assert answer.headers.get_list("ratelimit") == ['"rate";r=9;t=2, "quota";r=999;t=46400']


def test_a_plan_without_limits_passes_no_backends_ratelimit_fields(
    moto_dynamo: Dynamo, consumer: str, serve
) -> None:
    """A plan with no rate and no quota has nothing to state: the caller reads no RateLimit
    fields at all, never the backend's as if they were its plan's."""
    from dataclasses import replace

    config = compile_infra(INFRA, "dev", {"TOLLWAY_SERVICE_USERS": serve(boasting_backend)})
    exchanger = AiohttpExchanger()
    plans = {**config.plans, "free": replace(config.plans["free"], rate=None, quota=None)}
    admission = QuotaAdmission(
        QuotaStore(dynamo_caller(exchanger, moto_dynamo.client()), moto_dynamo.table), plans
    )
    upstream = HttpUpstream(exchanger)
    gateway = Gateway(config, authenticator=KeyHolders(), upstream=upstream, admission=admission)
    url = serve(GatewayApp(gateway, on_shutdown=[exchanger.close]))
    with httpx.Client(base_url=url) as http:
        answer = http.get("/v1/users/7", headers={"x-api-key": consumer})
    assert answer.status_code == 200
    assert answer.headers.get_list("ratelimit-policy") == []
    assert answer.headers.get_list("ratelimit") == []
