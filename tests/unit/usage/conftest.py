from __future__ import annotations

import time

import pytest
from tollway.config.compile import compile_infra
from tollway.core.context import BackendOutcome, Context
from tollway.core.messages import Request, Response
from tollway.core.principal import Principal

from tests.conftest import INFRA


@pytest.fixture(scope="session")
def route():
    return next(r for r in compile_infra(INFRA, "dev").routes if r.id == "users.get")


@pytest.fixture
def exchange(route) -> Context:
    request = Request(
        method="GET",
        path="/v1/users/7",
        query_string=b"",
        headers={"authorization": "Bearer sekret-token", "x-api-key": "sekret-key", "cookie": "sid=sekret"},
        body=b"abc",
        client_ip="203.0.113.7",
        scheme="https",
        request_id="req-1",
    )
    ctx = Context(request, route, {"user_id": "7"}, time.monotonic())
    ctx.principal = Principal("acme", "pro", frozenset({"users:read"}), "api_key", key_id="k1")
    ctx.admitted, ctx.cost_units = True, 1
    ctx.backends.append(BackendOutcome("user", 200, 3.25))
    return ctx


@pytest.fixture
def response() -> Response:
    return Response(200, [("content-type", "application/json")], b'{"id": 7}')
