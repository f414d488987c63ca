"""A metered route in front of a gRPC service: the cost is read from the reply's canonical
JSON (SPEC §7: metering paths read that mapping), from a unary answer and from an event stream."""

from __future__ import annotations

from pathlib import Path

import httpx
from tollway.config.compile import compile_infra
from tollway.http.app import GatewayApp
from tollway.pipeline import Exchange, Gateway
from tollway.transport.client import make_client
from tollway.upstream.dispatch import HttpUpstream

from tests.grpc_backends import ThingsServer, thing
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import FakeAuthenticator


class CountingAdmission:
    """Admits everyone and keeps what each request was settled at."""

    def __init__(self) -> None:
        self.settled: list[int] = []

    async def admit(self, exchange: Exchange) -> None:
        exchange.admitted = True
        exchange.reserved_units = exchange.cost_units = 10

    def policy(self, principal) -> list[tuple[str, str]]:
        return []

    def settle(self, exchange: Exchange) -> None:
        self.settled.append(exchange.cost_units)


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
    client = make_client()
    upstream = HttpUpstream(client)
    gateway = Gateway(config, authenticator=FakeAuthenticator(), upstream=upstream, admission=admission)
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as gw:
            unary = await gw.post("/v1/metered", json={"small": 3, "child": {"small": 4}})
            events = await gw.get("/v1/metered-stream", headers={"accept": "text/event-stream"})
    finally:
        await client.aclose()
    assert unary.status_code == 200 and unary.json() == {"small": 3, "child": {"small": 4}}
    assert events.text.count("data: ") == 4
    # 3 + 2 x 4; the stream's last message says small = 3.
    assert admission.settled == [11, 3]
    assert things.calls[0].request == thing(small=3, child={"small": 4})
