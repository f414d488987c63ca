"""The meter's property (issue 18, item 7): after settling, a consumer's counter holds exactly the
sum of the charges of its admitted requests, and nothing the gateway refuses is charged.

A hypothesis state machine drives one consumer (on a plan it draws: a daily or monthly quota,
with or without a rate limit, a rate limit alone, a sharded quota) through any sequence of
requests against the shop (tests/shop.py: the app as build_app wires it, keys, counters and
usage queue in the moto server, under uvicorn, in front of a scripted chat backend): metered
JSON answers and event streams (whole, broken, cut at the deadline; with usage, without, or
malformed; 2xx, 4xx and 5xx), unmetered routes of cost 0 and 2, a composed route, a dead
backend behind a breaker, and every kind of refusal the gateway makes by itself. Each request
waits for the previous one's settle, so an oracle written from docs/metering.md and
docs/quota.md (tests/meter.py) says what each must be answered and charged; at the end the
counter is compared with the usage events' `cost_units` of the admitted requests.

`make test` runs a fixed, short set of sequences; `make fuzz` (TOLLWAY_FUZZ_EXAMPLES) explores.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from tests.fuzz.stack import DERANDOMIZE, EXAMPLES
from tests.meter import Meter, settled, wait_for
from tests.shop import QUOTAS, REFUSALS, Shop, open_shop

METERS = {
    "/v1/chat": Meter(reserve=40, missing=5),
    "/v1/chat/estimated": Meter(weight=Decimal("1.5"), estimate_weight=Decimal(2), plus=5),
}
UNMETERED = {"/v1/items/1": 2, "/v1/free/1": 0, "/v1/combo/x": 2}
DEAD_COST = 2
STATUS = {200: 200, 400: 400, 503: 502}  # the backend's status -> what the caller gets


@st.composite
def metered(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    path = draw(st.sampled_from(sorted(METERS)))
    body: dict[str, Any] = {}
    tokens = draw(st.one_of(st.none(), st.just(0), st.integers(0, 30), st.just("x")))
    if tokens is not None:
        body["max_tokens"] = tokens
    stream = draw(st.booleans())
    reply: dict[str, Any] = {
        "status": draw(st.sampled_from([200, 200, 200, 400, 503])),
        "usage": draw(st.one_of(st.none(), st.integers(0, 40), st.just("bad"))),
        "stream": stream,
    }
    if stream:
        # Held past the deadline only on the route whose deadline is short (400 ms).
        ends = ["done", "done", "done", "drop"] + (["hold"] if path == "/v1/chat/estimated" else [])
        reply["end"] = draw(st.sampled_from(ends))
        reply["usage_at"] = draw(st.sampled_from(["end", "start"]))
        reply["hold_s"] = 1.0
    body["reply"] = reply
    return path, body


@pytest.fixture
def shop(aws, serve, tmp_path, monkeypatch) -> Shop:
    return open_shop(aws, serve, tmp_path, monkeypatch)


@pytest.mark.timeout(max(120, EXAMPLES))  # a sequence takes up to a second (streams held to their deadline)
def test_the_counter_is_the_sum_of_the_charges_of_admitted_requests_over_any_sequence(shop: Shop) -> None:
    breaker = {"open": False}  # the dead backend's breaker lives as long as the app

    class MeterMachine(RuleBasedStateMachine):
        @initialize(plan=st.sampled_from(["small", "both", "month", "rateonly", "sharded"]))
        def consumer(self, plan: str) -> None:
            self.shop = replace(shop, consumer=f"c-{uuid.uuid4().hex[:10]}", plan=plan)
            self.key = self.shop.key()
            self.exact = plan != "sharded"  # a sharded plan's shard is random: invariant only
            self.quota, self.rate = QUOTAS.get(plan, (None, True))
            self.model = 0  # the counter, as the docs say it must be once settled
            self.expected: dict[str, tuple[bool, int] | None] = {}  # request id -> (admitted, cost)
            self.http = httpx.Client(base_url=shop.url, timeout=10)

        def fits(self, cost: int, metered: bool) -> bool:
            if self.quota is None or (cost == 0 and not metered and not self.rate):
                return True  # nothing to count, or a plan without a quota
            return self.model + cost <= self.quota

        def send(self, method: str, path: str, **more: Any) -> tuple[str, httpx.Response]:
            rid = uuid.uuid4().hex
            headers = {"x-request-id": rid, "x-api-key": self.key}
            answer = self.http.request(method, path, headers=headers, **more)
            settled(shop.app)
            return rid, answer

        def charged(self, rid: str, answer: httpx.Response, status: int, admitted: bool, cost: int) -> None:
            if not self.exact:
                self.expected[rid] = None
                return
            assert answer.status_code == (status if admitted else 429), answer.text
            self.expected[rid] = (admitted, cost if admitted else 0)
            self.model += cost if admitted else 0

        @rule(request=metered())
        def metered_request(self, request: tuple[str, dict[str, Any]]) -> None:
            path, body = request
            meter = METERS[path]
            reserved = meter.reservation(body)
            rid, answer = self.send("POST", path, json=body)
            status = STATUS[body["reply"]["status"]]
            self.charged(rid, answer, status, self.fits(reserved, True), meter.charge(body, reserved))

        @rule(path=st.sampled_from(sorted(UNMETERED)))
        def unmetered_request(self, path: str) -> None:
            cost = UNMETERED[path]
            rid, answer = self.send("GET", path)
            self.charged(rid, answer, 200, self.fits(cost, False), cost)

        @rule()
        def dead_backend(self) -> None:
            """Its first admitted request tries it (charged) and opens the breaker; the rest
            are refused before admission, for free."""
            rid, answer = self.send("GET", "/v1/dead")
            if breaker["open"]:
                assert answer.status_code == 502 and "circuit open" in answer.text
                self.expected[rid] = (False, 0)
                return
            admitted = self.fits(DEAD_COST, False) if self.exact else answer.status_code == 502
            self.charged(rid, answer, 502, admitted, DEAD_COST)
            breaker["open"] = breaker["open"] or admitted

        @rule(refusal=st.sampled_from(REFUSALS))
        def refused(self, refusal: tuple[str, Any, int | tuple[int, ...] | None, bool]) -> None:
            kind, send, status, routed = refusal
            rid = uuid.uuid4().hex
            answer = send(self.http, self.shop, {"x-request-id": rid})
            settled(shop.app)
            got = answer if isinstance(answer, int | None) else answer.status_code
            assert status is None or got in (status if isinstance(status, tuple) else (status,)), (kind, got)
            self.expected[rid] = (False, 0) if routed else None
            if routed:  # a cut body's caller is gone before the gateway has answered
                wait_for(lambda: any(e["request_id"] == rid for e in shop.tee.events), what=kind)

        def teardown(self) -> None:
            self.http.close()
            settled(shop.app)
            events = {e["request_id"]: e for e in shop.tee.events if e["request_id"] in self.expected}
            for rid, expected in self.expected.items():
                event = events.get(rid)
                if expected is not None:
                    assert event is not None, rid
                    assert (event["admitted"], event["cost_units"]) == expected, event
            mine = [e for e in shop.tee.of(self.shop.consumer)]
            assert all(e["cost_units"] == 0 for e in mine if not e["admitted"])
            charges = sum(e["cost_units"] for e in mine if e["admitted"])
            counter = self.shop.used()
            assert counter == charges, (counter, charges)
            if self.exact:
                assert counter == self.model

    run_state_machine_as_test(
        MeterMachine,
        settings=settings(
            max_examples=max(8, EXAMPLES // 5),
            stateful_step_count=12,
            deadline=None,
            derandomize=DERANDOMIZE,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
