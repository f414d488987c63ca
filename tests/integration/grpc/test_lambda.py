"""gRPC routes through `functions/router/app.handler`, with API Gateway HTTP API (v2) events,
on the route table `sam build` writes: no protoc at run time, one channel per container."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from tollway.cli import main as tollway

from tests.grpc_backends import ThingsServer, as_json, copy_protos
from tests.infra_files import write_infra
from tests.lambda_router import Context, load_router

EVENTS = Path(__file__).resolve().parents[2] / "events"
ROUTES = """\
- id: thing.get
  path: /v1/things/{id}
  methods: [GET]
  public: true
  backends:
    - {name: t, service: things, grpc: tollway.test.v1.Things/Get, body: {id: "{id}", version: 3}}
- id: thing.create
  path: /v1/things
  methods: [POST]
  public: true
  backends:
    - {name: t, service: things, grpc: tollway.test.v1.Things/Create}
- id: things.list
  path: /v1/things
  methods: [GET]
  public: true
  backends:
    - {name: t, service: things, grpc: tollway.test.v1.Things/List, body: {count: 2}}
"""


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def router(tmp_path: Path, things: ThingsServer, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    source = copy_protos(write_infra(tmp_path / "src", {"things": things.url}, ROUTES))
    built = tmp_path / "built"
    shutil.copytree(source, built)
    # As sam build does (build.mk): check, then write the table into the function's copy.
    assert tollway(["routes", "check", "--infra", str(source), "--write-table", str(built)]) == 0
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(built))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    return load_router()


def test_a_get_event_is_translated(router: ModuleType, things: ThingsServer, caplog) -> None:
    result = router.handler(event("http_api_v2_grpc_get"), Context())
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"]) == {"id": "t-1", "displayName": "thing t-1", "big": "3"}
    assert result["headers"]["x-request-id"] == "caller-req-grpc"
    [call] = things.calls
    assert as_json("GetRequest", call.request) == {"id": "t-1", "version": "3"}
    metadata = dict(call.metadata)
    assert metadata["x-forwarded-for"] == "203.0.113.7" and metadata["x-forwarded-proto"] == "https"
    assert "route table not used" not in caplog.text  # the built table, with its descriptors


def test_a_post_event_body_is_the_request_message(router: ModuleType, things: ThingsServer) -> None:
    result = router.handler(event("http_api_v2_grpc_post"), Context())
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"]) == {"id": "t-2", "big": "9007199254740993", "kind": "GADGET"}
    assert as_json("Thing", things.calls[0].request)["big"] == "9007199254740993"


def test_a_post_event_that_does_not_fit_sends_nothing(router: ModuleType, things: ThingsServer) -> None:
    bad = event("http_api_v2_grpc_post")
    bad["body"] = '{"id": "t-2", "big": "18446744073709551616"}'
    bad["headers"]["content-length"] = str(len(bad["body"]))
    result = router.handler(bad, Context())
    assert result["statusCode"] == 400
    assert result["headers"]["content-type"] == "application/problem+json"
    assert things.calls == []


def test_an_event_stream_is_buffered_into_the_lambda_result(router: ModuleType) -> None:
    result = router.handler(event("http_api_v2_grpc_events"), Context())
    assert result["statusCode"] == 200
    assert result["headers"]["content-type"] == "text/event-stream"
    assert result["body"] == 'data: {"id":"t0"}\n\ndata: {"id":"t1","small":1}\n\n'


def test_warm_invocations_reuse_one_channel(router: ModuleType, things: ThingsServer) -> None:
    for _ in range(20):
        assert router.handler(event("http_api_v2_grpc_get"), Context())["statusCode"] == 200
    # Mangum's one event loop per container: one channel, one HTTP/2 connection, 20 calls.
    assert len({call.peer for call in things.calls}) == 1
    assert len(things.calls) == 20


def test_two_adapters_in_one_process_each_call_on_their_own_loop(
    router: ModuleType, things: ThingsServer
) -> None:
    assert router.handler(event("http_api_v2_grpc_get"), Context())["statusCode"] == 200
    second = load_router()  # a new adapter: a new event loop
    for module in (second, router, second):
        assert module.handler(event("http_api_v2_grpc_get"), Context())["statusCode"] == 200
    assert len(things.calls) == 4
