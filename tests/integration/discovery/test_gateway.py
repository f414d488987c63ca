"""A gateway built by `build_app` whose services come from SSM and Cloud Map (moto server),
calling real loopback instances."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from tollway.assemble import build_app
from tollway.settings import Settings

from tests.integration.discovery.conftest import register
from tests.integration.upstream.conftest import Reply, Scripted

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_infra(root, services):
    (root / "routes").mkdir()
    (root / "gateway.yaml").write_text(yaml.safe_dump({"stages": {"test": {"services": services}}}))
    (root / "plans.yaml").write_text("plans:\n  free: {}\n")
    routes = [
        {"id": name, "path": f"/{name}", "methods": ["GET"], "public": True,
         "backends": [{"name": name, "service": name, "path": "/x"}]}
        for name in services
    ]  # fmt: skip
    (root / "routes" / "t.yaml").write_text(yaml.safe_dump({"team": "t", "routes": routes}))
    return root


async def call(app, path: str, times: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw.test") as gw:
        return [await gw.get(path) for _ in range(times)]


async def test_services_from_ssm_and_cloud_map_spread_over_their_instances(
    clients, serve, tmp_path, monkeypatch
):
    # tollway.aws.client reads the endpoint from the environment (set by the moto fixture);
    # host prefixes are turned off the standard way, as `tollway dev` would.
    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    users = [Scripted({"/x": Reply(json={"users": i})}) for i in range(2)]
    orders = [Scripted({"/x": Reply(json={"orders": i})}) for i in range(3)]
    clients("ssm").put_parameter(
        Name="/tollway/test/users", Value=",".join(serve(s) for s in users), Type="String"
    )
    addresses = [urlsplit(serve(s)) for s in orders]
    register(
        clients("servicediscovery"),
        "tollway.test",
        "orders",
        {
            f"o{i}": {"AWS_INSTANCE_IPV4": a.hostname, "AWS_INSTANCE_PORT": str(a.port)}
            for i, a in enumerate(addresses)
        },
    )
    services = {
        "users": "ssm:/tollway/test/users",
        "orders": "cloudmap:tollway.test/orders",
        "none": "ssm:/nope",
    }
    app = build_app(Settings(infra=write_infra(tmp_path, services), stage="test", environ={}))

    answers = await call(app, "/users", 4)
    assert Counter(r.json()["users"] for r in answers) == {0: 2, 1: 2}
    answers = await call(app, "/orders", 6)
    assert Counter(r.json()["orders"] for r in answers) == {0: 2, 1: 2, 2: 2}
    # A reference that resolved to nothing at cold start: the documented 502, naming the service.
    (missing,) = await call(app, "/none", 1)
    assert missing.status_code == 502
    assert missing.json()["detail"] == "backend none failed: service none has no known instances"


async def test_the_environment_override_wins_and_skips_the_lookup(clients, serve, tmp_path):
    local = Scripted({"/x": Reply(json={"local": True})})
    # No such parameter exists: had it been looked up, the service would have no instance.
    infra = write_infra(tmp_path, {"users": "ssm:/tollway/test/absent"})
    app = build_app(Settings(infra=infra, stage="test", environ={"TOLLWAY_SERVICE_USERS": serve(local)}))
    (answer,) = await call(app, "/users", 1)
    assert answer.json() == {"local": True}
