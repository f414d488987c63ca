"""Nothing the gateway refuses by itself is charged or counted (issue 19, item 2).

Every kind of refusal the gateway makes before calling a backend (docs/metering.md, "What is
charged"), each through the app as build_app wires it (keys, quota and usage queue in the
moto server, JWTs of a dev issuer) under uvicorn, in front of a real loopback backend: the
consumer's counter does not move, the request's usage event says `admitted: false` with
`cost_units: 0` (or there is none, for a request that matched no route), and the backend
never sees it. Then what a backend's error answer costs on a metered route.
"""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from tests.meter import settled, wait_for
from tests.shop import REFUSALS, Send, Shop, open_shop

from .test_failures import fault_server


@pytest.fixture
def shop(aws, serve, tmp_path, monkeypatch) -> Shop:
    return open_shop(aws, serve, tmp_path, monkeypatch)


@pytest.mark.parametrize(("kind", "send", "status", "routed"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refusal_of_the_gateway_is_neither_charged_nor_counted(
    shop: Shop, kind: str, send: Send, status: int | tuple[int, ...] | None, routed: bool
) -> None:
    rid = uuid.uuid4().hex
    with httpx.Client(base_url=shop.url, timeout=10) as http:
        answer = send(http, shop, {"x-request-id": rid})
    got = answer if isinstance(answer, int | None) else answer.status_code
    if status is not None:
        assert got in (status if isinstance(status, tuple) else (status,)), answer.text
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
    800 ms): it passed the check before admission, was admitted and counted, then was refused
    without a call. Its units go back to the counter (a settle of -2) and nothing is billed."""
    with fault_server(failures=0, upstream=moto_url, delay_s=0.8) as slow:
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
