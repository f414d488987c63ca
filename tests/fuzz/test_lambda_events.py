"""Hypothesis against `functions/router/app.handler` with malformed API Gateway v2 events.

Events start from the recorded ones in tests/events/ and get odd methods, paths, encodings,
headers, cookies, query strings and bodies (base64 valid and not). The handler must never
raise (a raise is an API Gateway 500 without a request id), never answer 5xx while every
backend is healthy, and always carry `x-request-id`.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backends import loopback_backend
from tests.fuzz.invariant import FORGED, FORGED_HEADERS, Recording, assert_boundary_held
from tests.fuzz.stack import DERANDOMIZE, EXAMPLES, JWT_SECRET, credentials, write_fuzz_infra
from tests.lambda_router import Context, load_router

ROOT = Path(__file__).resolve().parents[2]
EVENTS = [json.loads(p.read_text()) for p in sorted((ROOT / "tests" / "events").glob("http_api_v2_*.json"))]


@pytest.fixture
def router(
    aws, serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> tuple[ModuleType, str, Recording]:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    backend = Recording(loopback_backend)
    infra = write_fuzz_infra(tmp_path, serve(backend))
    key = credentials(infra, capsys).key
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    monkeypatch.setenv("FUZZ_JWT_SECRET", JWT_SECRET)
    module = load_router()
    return module, key, backend


ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
SEGMENT = st.one_of(
    st.sampled_from(
        [
            "..",
            ".",
            "%2e%2e",
            "%2E%2e",
            "%2f",
            "%2F..",
            "a%00b",
            "%",
            "%zz",
            "\\",
            "@evil",
            "a;x",
            "a%3Bx",
            "a b",
            "%25",
            "\uff0f",
            "\u2215",
            "\uff0e\uff0e",
            "\u0000",
            "x" * 300,
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
)
SHAPES = ["/v1/echo/{}", "/v1/things/{}", "/v1/merge/{}/{}", "/v1/status", "/v1/orders", "/v1/search"]
PREFIXES = ["/v1/echo", "/v1/things", "/v1/merge/a", "/v1/status", "/v1/orders", "/v1/search", "", "/v1"]
METHODS = st.one_of(
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "TRACE", "", "GET ", "G\u00c9T"]),
)
HEADER_NAME = st.one_of(
    st.sampled_from(
        [
            "x-request-id",
            "content-type",
            "content-length",
            "host",
            "x-forwarded-for",
            "cookie",
            "connection",
            "transfer-encoding",
            "x-api-key",
            "authorization",
            "origin",
            "access-control-request-method",
            "x-tollway-consumer",
            "x-tollway-scopes",
            "x-tollway-plan",
            "x_tollway_consumer",
            "x-forwarded-host",
            "x-forwarded-prefix",
            "x_forwarded_for",
            "forwarded",
            "expect",
            "te",
        ]
    ),
    st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"),
)
HEADER_VALUE = st.one_of(
    ODD_TEXT,
    st.sampled_from(
        [
            "",
            " ",
            "a, b",
            "0",
            "-1",
            "99999999999999999999",
            "chunked",
            "close, x-api-key",
            "x" * 9000,
            FORGED,
        ]
    ),
)


@st.composite
def body_fields(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "text", "b64", "empty", "json"]))
    if kind == "none":
        return {}
    if kind == "text":
        return {"body": draw(ODD_TEXT), "isBase64Encoded": False}
    if kind == "b64":
        return {"body": base64.b64encode(draw(st.binary(max_size=300))).decode(), "isBase64Encoded": True}
    if kind == "json":
        return {
            "body": json.dumps({"items": [{"sku": "a", "qty": draw(st.integers())}]}),
            "isBase64Encoded": False,
        }
    return {"body": "", "isBase64Encoded": draw(st.booleans())}


@st.composite
def events(draw, key: str) -> dict[str, Any]:
    event = copy.deepcopy(draw(st.sampled_from(EVENTS)))
    if draw(st.booleans()):
        # A route's shape with odd parameter values: these reach the pipeline and the backends.
        shape = draw(st.sampled_from(SHAPES))
        path = shape.format(*(draw(SEGMENT) for _ in range(shape.count("{}"))))
    else:
        path = draw(st.sampled_from(PREFIXES)) + "".join("/" + s for s in draw(st.lists(SEGMENT, max_size=4)))
        if draw(st.booleans()):
            path += "/" * draw(st.integers(0, 3)) + "a" * draw(st.sampled_from([0, 1, 5000]))
    path = path or "/"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = draw(METHODS)
    headers = dict(event.get("headers", {}))
    for name, value in draw(st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=6)):
        # API Gateway joins repeated fields with a comma: a duplicate arrives that way.
        headers[name] = f"{headers[name]},{value}" if name in headers and draw(st.booleans()) else value
    # A forged field in the gateway's namespaces, in any spelling: the backend must never see it.
    for name in draw(st.lists(st.sampled_from(sorted(FORGED_HEADERS)), max_size=3)):
        headers[draw(st.sampled_from([name, name.lower()]))] = FORGED
    credential = draw(st.sampled_from(["none", "key", "junk"]))
    if credential == "key":
        headers["x-api-key"] = key
    elif credential == "junk":
        headers["authorization"] = "Bearer " + draw(ODD_TEXT)
    event["headers"] = headers
    if draw(st.booleans()):
        event["cookies"] = draw(
            st.lists(st.one_of(ODD_TEXT, st.sampled_from(["a=1", "a=2", "=", ";;", "a"])), max_size=5)
        )
    else:
        event.pop("cookies", None)
    event["rawQueryString"] = draw(
        st.one_of(
            st.just(""), ODD_TEXT, st.sampled_from(["a=%zz", "a=1&a=2", "dry_run=maybe", "&&==", "limit=99"])
        )
    )
    event["requestContext"]["http"]["sourceIp"] = draw(st.sampled_from(["203.0.113.7", "::1", "2001:db8::1"]))
    event.pop("body", None)
    event.pop("isBase64Encoded", None)
    event.update(draw(body_fields()))
    if draw(st.integers(0, 9)) == 0:
        event.pop("headers")
    return event


def test_the_handler_answers_every_event_without_raising_or_a_5xx(router) -> None:
    module, key, backend = router
    seen: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(event=events(key))
    def invoke(event: dict[str, Any]) -> None:
        backend.seen.clear()
        result = module.handler(event, Context())
        status = result["statusCode"]
        seen[status] += 1
        headers = {k.lower(): v for k, v in result.get("headers", {}).items()}
        where = f"{event['requestContext']['http']['method']!r} {event['rawPath'][:120]!r} -> {status}"
        assert "x-request-id" in headers, where
        assert status < 500, f"{where}: {result.get('body', '')[:300]}"
        assert_boundary_held(backend, where)
        if status >= 400 and result.get("body"):
            assert headers["content-type"] == "application/problem+json", where
            assert json.loads(result["body"])["status"] == status, where

    invoke()
    assert seen[200] > 0 and sum(n for s, n in seen.items() if 400 <= s < 500) > 0, seen


@pytest.mark.parametrize("body", ["abc", "a===", "abcde"])
def test_an_invalid_base64_body_is_a_400_not_a_raise(router, body: str) -> None:
    module, _, _ = router
    event = copy.deepcopy(EVENTS[0])
    event.update(body=body, isBase64Encoded=True)
    result = module.handler(event, Context())
    assert result["statusCode"] == 400
