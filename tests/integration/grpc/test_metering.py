"""A metered route in front of a gRPC service: the cost is read from the reply's canonical
JSON (SPEC §7: metering paths read that mapping), from a unary answer and from an event stream."""

from __future__ import annotations

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
    config = compile_infra(grpc_infra(tmp_path, {"t": things.url}, ROUTES), "test")
    admission = CountingAdmission()
    exchanger = AiohttpExchanger()
    upstream = HttpUpstream(exchanger)
    gateway = Gateway(config, authenticator=FakeAuthenticator(), upstream=upstream, admission=admission)
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as gw:
            unary = await gw.post("/v1/metered", json={"small": 3, "child": {"small": 4}})
            events = await gw.get("/v1/metered-stream", headers={"accept": "text/event-stream"})
    finally:
        await exchanger.close()
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
    config = compile_infra(grpc_infra(tmp_path, {"t": things.url}, routes), "test")
    admission = CountingAdmission()
    exchanger = AiohttpExchanger()
    upstream = HttpUpstream(exchanger)
    gateway = Gateway(config, authenticator=FakeAuthenticator(), upstream=upstream, admission=admission)
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as gw:
            answers = [
                await gw.post(path, json=body)
                for path in ("/v1/metered", "/v1/composed")
                for body in ({"nope": 1}, {"small": "x"}, {"small": 2**70})
            ]
    finally:
        await exchanger.close()
    assert [a.status_code for a in answers] == [400] * 6
    assert admission.admitted == [] and admission.settled == [] and things.calls == []
