"""The route table `sam build` compiles (tollway/config/artifact.py): it loads to the config the
YAML compiles to, the app built on it answers and forwards exactly the same, and a stale or
missing table is refused (then the sources are compiled, with a warning)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from tollway.assemble import build_app
from tollway.cli import main as tollway
from tollway.config import artifact
from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError
from tollway.settings import Settings

from tests.backends import loopback_backend
from tests.infra_files import write_infra

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio

ROUTES = """\
- id: user
  path: /v1/users/{user_id}
  methods: [GET]
  public: true
  backends:
    - {name: b, service: svc, path: "/echo/users/{user_id}", query: {v: "2"}, headers: {x-team: core}}
- id: combo
  path: /v1/combo/{id}
  methods: [GET]
  public: true
  compose: merge
  backends:
    - {name: a, service: svc, path: "/echo/a/{id}", pick: [path, method], rename: {path: a_path}}
    - {name: b, service: svc, path: "/echo/b/{a.method}", pick: [path]}
- id: office
  path: /v1/office
  methods: [GET]
  public: true
  ip: {allow: ["10.1.0.0/16"], deny: ["10.1.9.0/24"]}
  backends: [{name: b, service: svc, path: /echo/office}]
- id: orders.create
  path: /v1/orders
  methods: [POST]
  public: true
  validate:
    body: {$ref: schemas/order.yaml}
    query: {type: object, properties: {limit: {type: integer, maximum: 10}}}
  backends: [{name: b, service: svc, path: /echo/orders, method: PUT, body: {kind: order}}]
"""
AUTH = """\
cors: {origins: ["https://app.example.com"], methods: [GET, POST], max_age_s: 60}
"""
ORDER_SCHEMA = """\
type: object
required: [items]
properties: {items: {type: array, minItems: 1}}
"""
# (method, path, client ip, headers, body)
REQUESTS = [
    ("GET", "/v1/users/42?x=1", "198.51.100.1", {"origin": "https://app.example.com"}, None),
    ("GET", "/v1/combo/7", "198.51.100.1", {}, None),
    ("GET", "/v1/office", "10.1.2.3", {}, None),
    ("GET", "/v1/office", "10.1.9.9", {}, None),
    ("POST", "/v1/orders?limit=3", "198.51.100.1", {"content-type": "application/json"}, b'{"items": [1]}'),
    ("POST", "/v1/orders?limit=30", "198.51.100.1", {"content-type": "application/json"}, b'{"items": [1]}'),
    ("POST", "/v1/orders", "198.51.100.1", {"content-type": "application/json"}, b'{"items": []}'),
    (
        "OPTIONS",
        "/v1/users/1",
        "198.51.100.1",
        {"origin": "https://app.example.com", "access-control-request-method": "GET"},
        None,
    ),  # fmt: skip
    ("DELETE", "/v1/users/1", "198.51.100.1", {}, None),
    ("GET", "/nowhere", "198.51.100.1", {}, None),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def infra(tmp_path: Path, serve) -> Path:
    infra = write_infra(tmp_path / "src", {"svc": serve(loopback_backend)}, ROUTES, auth=AUTH)
    (infra / "schemas").mkdir()
    (infra / "schemas" / "order.yaml").write_text(ORDER_SCHEMA)
    return infra


def built(infra: Path, into: Path) -> Path:
    """The infra copy with its table, as build.mk makes it."""
    shutil.copytree(infra, into)
    assert tollway(["routes", "check", "--infra", str(infra), "--write-table", str(into)]) == 0
    assert (into / artifact.TABLE_NAME).exists()
    return into


def comparable(response: httpx.Response) -> tuple:
    """Status, headers and body of an answer, without what differs on every request."""
    headers = sorted((k, v) for k, v in response.headers.items() if k not in {"x-request-id", "date"})
    body: object = response.content
    if response.headers.get("content-type", "").endswith("json"):
        body = json.loads(response.content)
        if isinstance(body, dict):
            body.pop("request_id", None)
            body.pop("client_port", None)
            if isinstance(body.get("headers"), list):  # what the echo backend received
                # The request id, and the gateway's span of the trace, are new on each request.
                body["headers"] = [h for h in body["headers"] if h[0] not in {"x-request-id", "traceparent"}]
    return response.status_code, headers, body


async def answers(app) -> list[tuple]:
    out = []
    for method, path, ip, headers, body in REQUESTS:
        transport = httpx.ASGITransport(app=app, client=(ip, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="https://gw.example.com") as gw:
            out.append(comparable(await gw.request(method, path, headers=headers, content=body)))
    return out


def test_the_table_loads_to_the_config_the_yaml_compiles_to(tmp_path: Path) -> None:
    copy = built(ROOT / "infra", tmp_path / "infra")
    for stage in ("dev", "prod"):
        loaded = artifact.load(copy, stage, {})
        assert loaded == compile_infra(ROOT / "infra", stage, {})
        assert [r.id for r in loaded.routes] == [
            r.id for r in compile_infra(ROOT / "infra", stage, {}).routes
        ]


def kinds(value: object, seen: set[int] | None = None) -> set[str]:
    """The qualified names of every type a route table holds, its own and its values'."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return set()
    seen.add(id(value))
    kind = type(value)
    found = {f"{kind.__module__}.{kind.__qualname__}"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            found |= kinds(getattr(value, f.name), seen)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= kinds(key, seen) | kinds(item, seen)
    elif isinstance(value, tuple | list | frozenset | set):
        for item in value:
            found |= kinds(item, seen)
    return found


def test_a_table_is_made_of_the_same_types_whatever_it_was_loaded_from(tmp_path: Path) -> None:
    """tollway.table's own types, never a pydantic model (or a stand-in for one), whether the
    table was compiled from the YAML now or loaded from the build's file."""
    copy = built(ROOT / "infra", tmp_path / "infra")
    compiled = kinds(compile_infra(ROOT / "infra", "dev", {}))
    loaded = kinds(artifact.load(copy, "dev", {}))
    assert compiled == loaded
    ours = {k for k in compiled if k.startswith("tollway.")}
    assert {"tollway.table.plans.Plan", "tollway.table.routes.Retry", "tollway.table.auth.ApiKeys"} <= ours
    assert not {k for k in ours if k.startswith("tollway.config.")}
    assert not {k for k in compiled if k.startswith("pydantic")}


async def test_an_app_on_the_table_answers_and_forwards_as_one_on_the_yaml(
    infra: Path, tmp_path: Path
) -> None:
    copy = built(infra, tmp_path / "built")
    settings = Settings(infra=copy, stage="dev", environ={})
    from_table = build_app(settings, config=artifact.load(copy, "dev", {}))
    from_yaml = build_app(Settings(infra=infra, stage="dev", environ={}))
    expected = await answers(from_yaml)
    assert await answers(from_table) == expected
    # The requests did what they should: the sample covers answers, refusals and forwarding.
    statuses = [a[0] for a in expected]
    assert statuses == [200, 200, 200, 403, 200, 400, 400, 204, 405, 404]
    forwarded = expected[4][2]
    assert forwarded["method"] == "PUT" and forwarded["path"] == "/echo/orders"


def test_the_table_applies_the_functions_service_overrides(infra: Path, tmp_path: Path) -> None:
    copy = built(infra, tmp_path / "built")
    environ = {"TOLLWAY_SERVICE_SVC": "http://127.0.0.1:9"}
    assert artifact.load(copy, "dev", environ) == compile_infra(infra, "dev", environ)
    with pytest.raises(ConfigError) as bad:
        artifact.load(copy, "dev", {"TOLLWAY_SERVICE_SVC": "ftp://nope"})
    [problem] = bad.value.problems
    assert str(problem).startswith(f"{infra / 'gateway.yaml'}:4: gateway: TOLLWAY_SERVICE_SVC: ")


@pytest.mark.parametrize("change", ["infra file", "header", "missing", "stage", "format"])
def test_a_stale_or_missing_table_is_refused(infra: Path, tmp_path: Path, change: str) -> None:
    copy = built(infra, tmp_path / "built")
    table = copy / artifact.TABLE_NAME
    stage = "dev"
    if change == "infra file":  # a route edited after the build
        routes = copy / "routes" / "test.yaml"
        routes.write_text(routes.read_text().replace("/v1/office", "/v1/office2"))
    elif change == "header":  # the tollway code changed: another fingerprint
        head, rest = table.read_bytes().split(b"\n", 1)
        table.write_bytes(head[:-8] + b"00000000\n" + rest)
    elif change == "missing":
        table.unlink()
    elif change == "stage":
        stage = "prod"
    else:
        table.write_bytes(b"tollway-route-table/0 abc\n" + table.read_bytes().split(b"\n", 1)[1])
    with pytest.raises(artifact.TableStale):
        artifact.load(copy, stage, {})


def test_a_stale_table_falls_back_to_the_sources_with_a_warning(
    infra: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = built(infra, tmp_path / "built")
    routes = copy / "routes" / "test.yaml"
    routes.write_text(routes.read_text().replace("/v1/office", "/v1/office2"))
    with caplog.at_level(logging.WARNING, logger="tollway.test"):
        config = artifact.load_or_compile(copy, "dev", {}, log=logging.getLogger("tollway.test"))
    assert "/v1/office2" in [r.path for r in config.routes]  # the sources, not the table
    assert "route table not used" in caplog.text and "stale" in caplog.text


def test_the_table_is_written_only_into_a_copy_of_the_checked_folder(infra: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(infra, other)
    (other / "plans.yaml").write_text((other / "plans.yaml").read_text() + "# edited\n")
    assert tollway(["routes", "check", "--infra", str(infra), "--write-table", str(other)]) == 1
    assert not (other / artifact.TABLE_NAME).exists()
