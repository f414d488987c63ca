"""A metered route in front of a gRPC service: the cost is read from the reply's canonical
JSON (SPEC §7: metering paths read that mapping), from a unary answer and from an event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from tollway.config.compile import compile_infra
from tollway.core.context import Context
from tollway.gateway import Gateway
from tollway.http.app import GatewayApp
from tollway.transport.exchange import AiohttpExchanger
from tollway.upstream.dispatch import HttpUpstream

from tests.grpc_backends import ThingsServer, thing
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import FakeAuthenticator


class CountingAdmission:
    """Admits everyone and keeps what each request was settled at."""

    def __init__(self) -> None:
        self.settled: list[int] = []
        self.admitted: list[str] = []

    def spend(self, ctx: Context) -> CountingSpend:
        return CountingSpend(self, ctx)

    def policy(self, principal) -> list[tuple[str, str]]:
        return []


class CountingSpend:
    def __init__(self, admission: CountingAdmission, ctx: Context) -> None:
        self.admission = admission
        self.ctx = ctx

    async def run(self) -> None:
        self.admission.admitted.append(self.ctx.route.id)
        self.ctx.admitted = True
        self.ctx.reserved_units = self.ctx.cost_units = 10

    def settle(self) -> None:
        self.admission.settled.append(self.ctx.cost_units)

    def remaining(self) -> str | None:
        return None


@asynccontextmanager
async def counted(
    tmp_path: Path, things: ThingsServer, routes: list[dict]
) -> AsyncIterator[tuple[httpx.AsyncClient, CountingAdmission]]:
    """The gateway in-process, `routes` in front of `things`, its admission a CountingAdmission."""
    config = compile_infra(grpc_infra(tmp_path, {"t": things.url}, routes), "test")
    admission = CountingAdmission()
    exchanger = AiohttpExchanger()
    upstream = HttpUpstream(exchanger)
    gateway = Gateway(config, authenticator=FakeAuthenticator(), upstream=upstream, admission=admission)
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as gw:
            yield gw, admission
    finally:
        await exchanger.close()


ROUTES = [
    {
        "id": "metered",
        "path": "/v1/metered",
        "methods": ["POST"],
        "metering": {"units": "small + 2 * child.small"},
        "backends": [{"name": "t", "service": "t", "grpc": "tollway.test.v1.Things/Create"}],
    },
    {
        "id": "metered.stream",
        "path": "/v1/metered-stream",
        "metering": {"units": "small"},
        "backends": [
            {"name": "t", "service": "t", "grpc": "tollway.test.v1.Things/List", "body": {"count": 4}}
        ],
    },
]


async def test_the_cost_is_read_from_the_replys_json(tmp_path: Path, things: ThingsServer) -> None:
    async with counted(tmp_path, things, ROUTES) as (gw, admission):
        unary = await gw.post("/v1/metered", json={"small": 3, "child": {"small": 4}})
        events = await gw.get("/v1/metered-stream", headers={"accept": "text/event-stream"})
    assert unary.status_code == 200 and unary.json() == {"small": 3, "child": {"small": 4}}
    assert events.text.count("data: ") == 4
    # 3 + 2 x 4; the stream's last message says small = 3.
    assert admission.settled == [11, 3]
    assert things.calls[0].request == thing(small=3, child={"small": 4})


async def test_a_message_the_callers_input_does_not_fit_is_refused_before_admission(
    tmp_path: Path, things: ThingsServer
) -> None:
    """docs/metering.md "What is charged": a 400 the gateway gives by itself spends nothing,
    on a proxy and on a composed gRPC route alike."""
    routes = [
        ROUTES[0],
        {**ROUTES[0], "id": "composed", "path": "/v1/composed", "compose": "group"},
    ]
    async with counted(tmp_path, things, routes) as (gw, admission):
        answers = [
            await gw.post(path, json=body)
            for path in ("/v1/metered", "/v1/composed")
            for body in ({"nope": 1}, {"small": "x"}, {"small": 2**70})
        ]
    assert [a.status_code for a in answers] == [400] * 6
    assert admission.admitted == [] and admission.settled == [] and things.calls == []


def _not_found(request: bytes, context) -> bytes:
    import grpc

    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


async def test_a_service_that_had_the_call_is_charged_also_when_it_refuses(
    tmp_path: Path, things: ThingsServer
) -> None:
    """docs/metering.md "What is charged": an unmetered route's admitted request pays its cost
    whatever the answer once a backend was called; only what the gateway refuses by itself is
    refunded. A gRPC service that had the call and answered a non-OK status (it did the lookup:
    a caller enumerating ids gets NOT_FOUND after NOT_FOUND) was refunded as if the gateway had
    refused it before calling anything: every failing call was free and counted nothing against
    the caller's quota or rate limit, on a proxy route and on a composed one alike."""
    routes = [
        {
            "id": "plain",
            "path": "/v1/plain/{id}",
            "methods": ["GET"],
            "backends": [
                {"name": "t", "service": "t", "grpc": "tollway.test.v1.Things/Get", "body": {"id": "{id}"}}
            ],
        },
        {
            "id": "composed",
            "path": "/v1/composed/{id}",
            "methods": ["GET"],
            "compose": "group",
            "backends": [
                {"name": "t", "service": "t", "grpc": "tollway.test.v1.Things/Get", "body": {"id": "{id}"}}
            ],
        },
        {**ROUTES[0], "id": "metered.refused", "path": "/v1/metered-refused"},
    ]
    things.handlers["Get"] = _not_found
    things.handlers["Create"] = _not_found
    async with counted(tmp_path, things, routes) as (gw, admission):
        answers = [
            (await gw.get("/v1/plain/1")).status_code,
            (await gw.get("/v1/composed/2")).status_code,
            (await gw.post("/v1/metered-refused", json={"small": 3})).status_code,
        ]
    assert answers[0] == 404 and answers[1] >= 400 and answers[2] == 404
    assert things.count("Get") == 2 and things.count("Create") == 1
    # The route's cost (10) for the unmetered ones; the metered one's error carries no usage: 0,
    # as a backend's 4xx without usage is charged (but it is settled, not refunded unspent).
    assert admission.settled == [10, 10, 0]
