"""The seams of issue 22's request path, attacked from outside (h-attack4).

Steps now do their after-work after `await next` (tollway.pipeline). Each test goes through the
app as build_app wires it, under uvicorn, in front of a real loopback backend (tests/shop.py),
and checks what the backend received, what the consumer's counter holds and what the request's
usage event says, besides the caller's answer.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.meter import settled, wait_for
from tests.shop import Shop, open_shop


@pytest.fixture
def shop(aws, serve, tmp_path, monkeypatch) -> Shop:
    return open_shop(aws, serve, tmp_path, monkeypatch)


def _event(shop: Shop, rid: str) -> dict:
    (event,) = wait_for(lambda: [e for e in shop.tee.events if e["request_id"] == rid], what="the event")
    return event


def test_a_bug_after_admission_is_refunded_and_its_500_keeps_the_routes_fields(
    shop: Shop, monkeypatch
) -> None:
    """An exception that is not a GatewayError, raised after admission and before any backend
    had the request (a bug in the upstream's code): the caller gets a 500 that still carries the
    route's CORS fields, its plan (RateLimit-Policy) and what is left (RateLimit), as every other
    answer of an authenticated CORS route does; nothing is charged or counted."""
    caller = shop.app.gateway.upstream.caller

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug before the call")

    monkeypatch.setattr(caller, "send", broken)
    rid = uuid.uuid4().hex
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        headers = {"x-api-key": shop.key(), "origin": "https://app.example", "x-request-id": rid}
        answer = http.get("/v1/items/1", headers=headers)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "a bug" not in answer.text
    assert answer.headers.get("access-control-allow-origin") == "https://app.example"
    assert "origin" in answer.headers.get("vary", "").lower()
    assert answer.headers.get("ratelimit-policy")
    assert answer.headers.get("ratelimit")
    event = _event(shop, rid)
    assert (event["admitted"], event["cost_units"], event["status"]) == (False, 0, 500), event
    settled(shop.app)
    assert shop.used() == 0
    assert shop.backend.bodies == []


def _timeouts() -> int:
    import gc

    import aiohttp

    return sum(isinstance(o, aiohttp.ClientTimeout) for o in gc.get_objects())


def test_the_exchanger_keeps_no_state_per_request(shop: Shop) -> None:
    """The container's one exchanger lives as long as the container: what it keeps must not
    grow with the requests it carries. Each admission's DynamoDB call is bounded by what is
    left of its request's deadline, a different number every time."""
    key = shop.key()
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        http.get("/v1/free/1", headers={"x-api-key": key})
        before = _timeouts()
        answers = [http.get("/v1/free/1", headers={"x-api-key": key}).status_code for _ in range(120)]
    assert set(answers) == {200}
    assert _timeouts() - before < 20
