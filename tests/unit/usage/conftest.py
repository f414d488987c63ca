from __future__ import annotations

import time

import pytest
from tollway.config.compile import compile_infra
from tollway.core.messages import Request, Response
from tollway.core.principal import Principal
from tollway.pipeline import BackendOutcome, Exchange

from tests.conftest import INFRA


@pytest.fixture(scope="session")
def route():
    return next(r for r in compile_infra(INFRA, "dev").routes if r.id == "users.get")


@pytest.fixture
def exchange(route) -> Exchange:
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
    ex = Exchange(request, route, {"user_id": "7"}, time.monotonic())
    ex.principal = Principal("acme", "pro", frozenset({"users:read"}), "api_key", key_id="k1")
    ex.admitted, ex.cost_units = True, 1
    ex.backends.append(BackendOutcome("user", 200, 3.25))
    return ex


@pytest.fixture
def response() -> Response:
    return Response(200, [("content-type", "application/json")], b'{"id": 7}')
