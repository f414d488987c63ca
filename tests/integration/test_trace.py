"""Trace context through the gateway, as the backends receive it: W3C `traceparent` on every
backend call (proxied and composed), the caller's trace id kept when it sent a valid one,
the invocation's X-Ray header on Lambda, and the trace id in the request's log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tollway.assemble import build_app
from tollway.core.trace import parse_traceparent
from tollway.settings import Settings

from tests import lambda_router
from tests.backends import loopback_backend
from tests.infra_files import write_infra

ROUTES = """\
- id: echo
  path: /v1/echo
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: /echo/one}]
- id: both
  path: /v1/both
  methods: [GET]
  public: true
  compose: group
  backends:
    - {name: a, service: svc, path: /echo/a}
    - {name: b, service: svc, path: /echo/b}
- id: kept
  path: /v1/kept
  methods: [GET]
  public: true
  compose: group
  backends:
    - {name: a, service: svc, path: /echo/a, cache: {ttl_s: 60, shared: true}}
"""
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
HEX = "0123456789abcdef"


@pytest.fixture(scope="module")
def backend() -> str:
    from tollway.dev.serve import serve_in_thread

    served = serve_in_thread(loopback_backend)
    yield served.url
    served.stop()


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Path:
    return write_infra(tmp_path_factory.mktemp("trace"), {"svc": backend}, ROUTES)


def gateway(infra: Path, runtime_trace=None) -> httpx.AsyncClient:
    app = build_app(Settings(infra=infra, stage="dev", environ={}), runtime_trace=runtime_trace)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gw.example.com")


def received(body: dict) -> dict[str, list[str]]:
    """The headers a backend received, every value of each name."""
    out: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        out.setdefault(name, []).append(value)
    return out


async def test_a_caller_without_trace_context_starts_a_trace_backends_join(infra: Path) -> None:
    async with gateway(infra) as http:
        first = received((await http.get("/v1/echo")).json())
        second = received((await http.get("/v1/echo")).json())
    (one,) = first["traceparent"]
    (two,) = second["traceparent"]
    assert TRACEPARENT.match(one) and TRACEPARENT.match(two)
    assert one.split("-")[1] != two.split("-")[1]  # a new trace per request
    assert "tracestate" not in first and "x-amzn-trace-id" not in first


valid_traceparents = st.builds(
    lambda version, trace, parent, flags: f"{version}-{trace}-{parent}-{flags}",
    st.text(HEX, min_size=2, max_size=2).filter(lambda v: v != "ff" and v != "00") | st.just("00"),
    st.text(HEX, min_size=32, max_size=32).filter(lambda t: t != "0" * 32),
    st.text(HEX, min_size=16, max_size=16).filter(lambda p: p != "0" * 16),
    st.text(HEX, min_size=2, max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caller=valid_traceparents, state=st.sampled_from([None, "vendor=abc,other=1"]))
async def test_a_valid_caller_trace_is_kept_with_the_gateway_s_own_span(
    infra: Path, caller: str, state: str | None
) -> None:
    headers = {"traceparent": caller} | ({"tracestate": state} if state else {})
    async with gateway(infra) as http:
        composed = (await http.get("/v1/both", headers=headers)).json()
    trace_id, parent_id, flags = caller.split("-")[1:4]
    spans = set()
    for name in ("a", "b"):  # every backend call of the request
        got = received(composed[name])
        (sent,) = got["traceparent"]
        m = TRACEPARENT.match(sent)
        assert m and m.group(1) == trace_id and m.group(3) == flags
        assert m.group(2) != parent_id and m.group(2) != "0" * 16
        spans.add(m.group(2))
        assert got.get("tracestate") == ([state] if state else None)
    assert len(spans) == 1  # one hop: the gateway's span is the parent of both calls


invalid_traceparents = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
    valid_traceparents.map(lambda t: t[:-1]),  # one digit short
    st.just("ff-" + "a" * 32 + "-" + "b" * 16 + "-01"),  # version ff
    st.just("00-" + "0" * 32 + "-" + "b" * 16 + "-01"),  # zero trace id
    st.just("00-" + "a" * 32 + "-" + "0" * 16 + "-01"),  # zero parent id
    st.just("00-" + "A" * 32 + "-" + "b" * 16 + "-01"),  # upper case
    st.just("00-" + "a" * 32 + "-" + "b" * 16 + "-01-extra"),  # version 00 has four fields
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caller=invalid_traceparents)
async def test_an_invalid_caller_trace_is_replaced_and_its_state_dropped(infra: Path, caller: str) -> None:
    assume(parse_traceparent(caller) is None)
    async with gateway(infra) as http:
        answer = await http.get("/v1/echo", headers={"traceparent": caller, "tracestate": "v=1"})
    got = received(answer.json())
    (sent,) = got["traceparent"]
    assert TRACEPARENT.match(sent) and sent != caller
    assert "tracestate" not in got  # it belongs to the trace that was not kept


XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


async def test_on_lambda_backends_get_the_invocation_s_xray_header_and_its_trace_id(infra: Path) -> None:
    async with gateway(infra, runtime_trace=lambda: XRAY) as http:
        plain = received((await http.get("/v1/echo", headers={"x-amzn-trace-id": "Root=forged"})).json())
        caller = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"
        traced = received((await http.get("/v1/echo", headers={"traceparent": caller})).json())
    assert plain["x-amzn-trace-id"] == [XRAY]  # the caller's replaced by the invocation's
    (sent,) = plain["traceparent"]
    assert sent.split("-")[1] == "5759e988bd862e3fe1be46a994272793" and sent.endswith("-01")
    assert traced["x-amzn-trace-id"] == [XRAY]
    assert traced["traceparent"][0].split("-")[1] == "c" * 32  # the caller's trace id wins


def test_the_lambda_handler_logs_the_trace_request_id_and_cold_start(
    infra: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    for name in ("KEYS_TABLE", "QUOTA_TABLE", "USAGE_QUEUE_URL", "KEY_SECRET_ID"):
        monkeypatch.delenv(f"TOLLWAY_{name}", raising=False)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", XRAY)  # the runtime sets it per invocation
    router = lambda_router.load_router()
    event = json.loads((Path(__file__).parents[1] / "events" / "http_api_v2_get.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/echo"
    from tollway.observability import logger

    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger("tollway").addHandler(handler)
    try:
        answers = [router.handler(event, lambda_router.Context(rid)) for rid in ("inv-1", "inv-2")]
    finally:
        logging.getLogger("tollway").removeHandler(handler)
    lines = [json.loads(line) for line in records.getvalue().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("message") == "access"]
    contexts = [(a["function_request_id"], a["cold_start"]) for a in access]
    assert contexts == [("inv-1", True), ("inv-2", False)]
    sent = received(json.loads(answers[0]["body"]))
    assert access[0]["trace_id"] == sent["traceparent"][0].split("-")[1] == "5759e988bd862e3fe1be46a994272793"
    assert sent["x-amzn-trace-id"] == [XRAY]
    assert "aws_xray_sdk" not in os.sys.modules  # read, not recorded: no X-Ray SDK


async def test_on_lambda_a_backend_cache_hits_across_invocations(infra: Path) -> None:
    """Each invocation has its own X-Ray header: like the request id and the traceparent it
    is sent with a fill but is not what the entry stands for, so the next invocation hits."""
    root = "Root=1-5759e988-bd862e3fe1be46a99427279{};Parent=53995c3f42cd8ad{};Sampled=1"
    headers = iter(root.format(i, i) for i in range(9))
    async with gateway(infra, runtime_trace=lambda: next(headers)) as http:
        first = (await http.get("/v1/kept")).json()
        second = (await http.get("/v1/kept")).json()
    assert received(first["a"])["x-amzn-trace-id"] == [root.format(0, 0)]
    assert second == first  # stored by the first invocation, served to the second
