"""`functions/router/app.handler` invoked with real API Gateway HTTP API (v2) events."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.backends import loopback_backend
from tests.infra_files import write_infra
from tests.lambda_router import Context, load_router

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"

ROUTES = """\
- id: status
  path: /v1/status
  methods: [GET]
  public: true
  backends:
    - {name: b, service: svc, path: /echo/status}
- id: echo
  path: /v1/echo
  methods: [POST]
  public: true
  backends:
    - {name: b, service: svc, path: /echo/post}
"""


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def router(tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    infra = write_infra(tmp_path, {"svc": serve(loopback_backend)}, ROUTES)
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    module = load_router()
    return module


def test_get_event_is_proxied(router: ModuleType) -> None:
    result = router.handler(event("http_api_v2_get"), Context())
    assert result["statusCode"] == 200
    assert result["headers"]["x-request-id"] == "caller-req-1"
    got = json.loads(result["body"])
    headers = dict(got["headers"])
    assert got["query"] == "verbose=1&tag=a&tag=b"
    assert headers["x-forwarded-for"] == "203.0.113.7"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == "abc123xyz.execute-api.us-east-1.amazonaws.com"
    assert headers["cookie"] == "session=abc123; theme=dark"
    assert "x-drop-me" not in headers and "te" not in headers


def test_base64_body_reaches_the_backend_intact(router: ModuleType) -> None:
    result = router.handler(event("http_api_v2_post_base64"), Context())
    assert result["statusCode"] == 200
    got = json.loads(result["body"])
    assert base64.b64decode(got["body"]) == b"\x00\x01\x02\xff\r"
    assert "x-api-key" not in dict(got["headers"])


def test_unknown_path_is_a_problem_with_a_fresh_request_id(router: ModuleType) -> None:
    result = router.handler(event("http_api_v2_unknown_path"), Context())
    assert result["statusCode"] == 404
    assert result["headers"]["content-type"] == "application/problem+json"
    body = json.loads(result["body"])
    assert body["request_id"] == result["headers"]["x-request-id"] != "bad id with spaces"


def test_warm_invocations_reuse_one_connection(router: ModuleType) -> None:
    ports = {
        json.loads(router.handler(event("http_api_v2_get"), Context())["body"])["client_port"]
        for _ in range(20)
    }
    # One pooled keep-alive connection, from one source port, served all twenty invocations.
    assert len(ports) == 1


def test_a_function_url_event_is_served_as_behind_the_http_api(router: ModuleType) -> None:
    """The optional front door of template.yaml (FunctionUrl=true) sends the same v2.0 payload."""
    result = router.handler(event("function_url_get"), Context())
    assert result["statusCode"] == 200
    assert result["headers"]["x-request-id"] == "url-req-1"
    got = json.loads(result["body"])
    headers = dict(got["headers"])
    assert (got["path"], got["query"]) == ("/echo/status", "verbose=1")
    assert headers["x-forwarded-for"] == "198.51.100.23"
    assert headers["x-forwarded-host"] == "z5ab3xmpl7fjsewpo3xcq2zdba0qgcyi.lambda-url.us-east-1.on.aws"
