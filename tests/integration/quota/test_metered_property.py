"""No admission without a counter write (issue 18, item 3), as a property of the real app.

Through the ASGI app under uvicorn (quota step on the DynamoDB caller, moto or dynalite; real
backends on loopback), a consumer sends a sequence of metered requests, each waiting for the
previous one's settle. Whatever the estimates, the reservations, the answers' costs and the
plan, the counter must then hold exactly the sum of the charges of the admitted requests, and
each request must be admitted exactly when its reservation fits what is left (docs/quota.md,
"The invariant"). The oracle (tests/meter.py) is written from the docs, not from the code.

Authentication is not under test here: a stand-in returns the principal a verified key would
(`x-api-key: <consumer>:<plan>`), so the same app runs on both DynamoDB implementations.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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

from tests.infra_files import write_infra
from tests.lean import dynamo_caller
from tests.meter import Meter, Scripted, Tee, settled, used

from .conftest import Dynamo
from .test_concurrency import NOON

ROUTES = """\
- id: m.tokens
  path: /v1/m/tokens
  methods: [POST]
  auth: [api_key]
  metering: {units: usage.total_tokens, estimate: {field: max_tokens}}
  backends: [{name: chat, service: chat, path: /chat}]
- id: m.weighted
  path: /v1/m/weighted
  methods: [POST]
  auth: [api_key]
  metering:
    units: "1.5 * usage.total_tokens"
    estimate: {field: max_tokens, weight: 2, plus: 10}
    reserve: 40
  backends: [{name: chat, service: chat, path: /chat}]
- id: m.reserve0
  path: /v1/m/reserve0
  methods: [POST]
  auth: [api_key]
  metering: {units: usage.total_tokens, reserve: 0}
  backends: [{name: chat, service: chat, path: /chat}]
- id: m.cost
  path: /v1/m/cost
  methods: [POST]
  auth: [api_key]
  cost: 3
  metering: {units: usage.total_tokens}
  backends: [{name: chat, service: chat, path: /chat}]
- id: m.missing
  path: /v1/m/missing
  methods: [POST]
  auth: [api_key]
  metering: {units: usage.total_tokens, estimate: {field: max_tokens}, missing: 5}
  backends: [{name: chat, service: chat, path: /chat}]
"""
METERS = {
    "/v1/m/tokens": Meter(estimate_weight=Decimal(1)),
    "/v1/m/weighted": Meter(weight=Decimal("1.5"), estimate_weight=Decimal(2), plus=10, reserve=40),
    "/v1/m/reserve0": Meter(reserve=0),
    "/v1/m/cost": Meter(cost=3),
    "/v1/m/missing": Meter(estimate_weight=Decimal(1), missing=5),
}
PLANS = """\
plans:
  quota: {quota: {limit: 100, per: day}}
  both: {rate: {limit: 1000, per: second}, quota: {limit: 100, per: day}}
  month: {quota: {limit: 150, per: month}}
  rate: {rate: {limit: 1000, per: second}}
  sharded: {rate: {limit: 1000, per: second}, quota: {limit: 100, per: day}, shards: 2}
"""
QUOTAS = {"quota": 100, "both": 100, "month": 150, "rate": None}


class KeyHolders:
    async def authenticate(
        self, request: Request, route: CompiledRoute, deadline: float | None = None
    ) -> Principal:
        value = request.headers.get("x-api-key", "")
        if ":" not in value:
            raise Unauthorized("no key")
        consumer, plan = value.split(":", 1)
        return Principal(consumer, plan, frozenset(), "api_key", "k-" + consumer)


@dataclass
class World:
    url: str
    app: GatewayApp
    tee: Tee
    dynamo: Dynamo
    backend: Scripted

    def used(self, consumer: str) -> int:
        return used(self.dynamo.client(), self.dynamo.table, consumer)


@pytest.fixture
def world(dynamo: Dynamo, serve, tmp_path) -> World:
    backend = Scripted()
    infra = write_infra(tmp_path, {"chat": serve(backend)}, ROUTES, plans=PLANS)
    config = compile_infra(infra, "dev")
    exchanger = AiohttpExchanger()  # as build_app wires it: one exchanger for backends and DynamoDB
    started = time.monotonic()
    store = QuotaStore(dynamo_caller(exchanger, dynamo.client()), dynamo.table)
    admission = QuotaAdmission(
        store, config.plans, now=lambda: NOON + time.monotonic() - started, refunds=True
    )
    tee = Tee()
    gateway = Gateway(
        config, authenticator=KeyHolders(), upstream=HttpUpstream(exchanger), admission=admission, usage=tee
    )
    app = GatewayApp(
        gateway,
        on_startup=[admission.settlements.start],
        on_shutdown=[admission.settlements.stop, exchanger.close],
    )
    return World(serve(app), app, tee, dynamo, backend)


def run(world: World, plan: str, requests: list[tuple[str, dict[str, Any]]]) -> None:
    """Send `requests` one after another as a new consumer on `plan`; check each answer and the
    counter against the oracle."""
    consumer = f"c-{uuid.uuid4().hex[:12]}"
    quota = QUOTAS.get(plan)
    model = 0  # the counter, as the docs say it must be once settled
    with httpx.Client(base_url=world.url, timeout=10) as http:
        for path, body in requests:
            meter = METERS[path]
            reserved = meter.reservation(body)
            answer = http.post(path, json=body, headers={"x-api-key": f"{consumer}:{plan}"})
            settled(world.app)
            if plan == "sharded":  # which shard is random: only the invariant is checked below
                assert answer.status_code in (200, 429), answer.text
                continue
            fits = quota is None or model + reserved <= quota
            assert answer.status_code == (200 if fits else 429), (path, body, model, answer.text)
            if fits:
                model += meter.charge(body, reserved)
    events = world.tee.of(consumer)
    admitted = [e for e in events if e["admitted"]]
    assert all(e["cost_units"] == 0 for e in events if not e["admitted"])
    counter = world.used(consumer)
    assert counter == sum(e["cost_units"] for e in admitted), (counter, events)
    if plan != "sharded":
        assert counter == model
        for (path, body), event in zip(requests, events, strict=True):
            if event["admitted"]:
                meter = METERS[path]
                assert event["cost_units"] == meter.charge(body, meter.reservation(body)), (body, event)
                assert event["reserved_units"] == meter.reservation(body)


USAGE = st.one_of(st.none(), st.integers(0, 80), st.just("bad"))
MAX_TOKENS = st.one_of(st.none(), st.just(0), st.integers(0, 60), st.floats(0, 30), st.just(-1), st.just("9"))


@st.composite
def metered_request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    tokens = draw(MAX_TOKENS)
    if tokens is not None:
        body["max_tokens"] = tokens
    body["reply"] = {"usage": draw(USAGE), "stream": draw(st.booleans())}
    return draw(st.sampled_from(sorted(METERS))), body


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.sampled_from(["quota", "both", "month", "rate", "sharded"]),
    requests=st.lists(metered_request(), min_size=1, max_size=10),
)
def test_the_counter_is_the_sum_of_the_charges_whatever_the_estimates_costs_and_plans(
    world: World, plan: str, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    run(world, plan, requests)


def test_a_zero_estimate_still_needs_room_and_is_counted(world: World) -> None:
    """The issue's case: `max_tokens: 0` (`plus` 0) on a quota without a rate limit. Six
    answers of 51 tokens each passed a 100-unit quota, uncounted; now the first two are
    admitted (each reserving 1 unit), counted, and the budget then refuses."""
    body = {"max_tokens": 0, "reply": {"usage": 51}}
    consumer = f"c-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=world.url, timeout=10) as http:
        statuses = []
        for _ in range(6):
            answer = http.post("/v1/m/tokens", json=body, headers={"x-api-key": f"{consumer}:quota"})
            statuses.append(answer.status_code)
            settled(world.app)
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert world.used(consumer) == 102
    assert len(world.backend.bodies) == 2
