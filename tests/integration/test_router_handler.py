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
- id: latin
  path: /v1/latin
  methods: [GET]
  public: true
  backends:
    - {name: b, service: latin, path: /latin}
"""


async def latin_backend(scope, receive, send) -> None:
    """Answers with a field value that is latin-1 text, not UTF-8 (RFC 9110 allows it)."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"x-name", b"caf\xe9")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def router(tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    infra = write_infra(tmp_path, {"svc": serve(loopback_backend), "latin": serve(latin_backend)}, ROUTES)
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


def _set(path: tuple[str, ...], value: object):
    def mutate(e: dict) -> None:
        for key in path[:-1]:
            e = e[key]
        e[path[-1]] = value

    return mutate


def _drop(*path: str):
    def mutate(e: dict) -> None:
        for key in path[:-1]:
            e = e[key]
        e.pop(path[-1])

    return mutate


MALFORMED = {
    "no requestContext.http": _drop("requestContext", "http"),
    "requestContext null": _set(("requestContext",), None),
    "no version": _drop("version"),
    "a payload 1.0 version": _set(("version",), "1.0"),
    "method a number": _set(("requestContext", "http", "method"), 5),
    "path null": _set(("requestContext", "http", "path"), None),
    "no sourceIp": _drop("requestContext", "http", "sourceIp"),
    "headers null": _set(("headers",), None),
    "headers a list": _set(("headers",), ["host: x"]),
    "a header value a number": _set(("headers", "x-n"), 5),
    "a lone surrogate in a header": _set(("headers", "x-s"), "\ud800"),
    "cookies a string": _set(("cookies",), "a=1"),
    "a cookie a number": _set(("cookies",), ["a=1", 2]),
    "rawQueryString a number": _set(("rawQueryString",), 5),
    "body a number": _set(("body",), 5),
    "isBase64Encoded a string": _set(("isBase64Encoded",), "yes"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_event_is_a_400_problem_never_a_raise(router: ModuleType, name: str) -> None:
    malformed = event("http_api_v2_get")
    MALFORMED[name](malformed)
    result = router.handler(malformed, Context())
    assert result["statusCode"] == 400, result
    assert result["headers"]["content-type"] == "application/problem+json"
    assert json.loads(result["body"])["request_id"] == result["headers"]["x-request-id"]


@pytest.mark.parametrize("host", ["a:b:c", "gw:https", "gw.test,evil.test"])
def test_an_odd_host_is_a_400_problem_as_under_uvicorn(router: ModuleType, host: str) -> None:
    odd = event("http_api_v2_get")
    odd["headers"]["host"] = host  # Mangum's own reader raised on the first two (a port that is no number)
    result = router.handler(odd, Context())
    assert result["statusCode"] == 400  # not host[:port] (RFC 9112 §3.2), on both hosts alike
    assert result["headers"]["content-type"] == "application/problem+json"


@pytest.mark.parametrize("payload", [[], "GET /", 5, None, {}])
def test_an_invocation_that_is_no_event_at_all_is_a_400(router: ModuleType, payload: object) -> None:
    result = router.handler(payload, Context())
    assert result["statusCode"] == 400
    assert result["headers"]["content-type"] == "application/problem+json"


@pytest.mark.parametrize("body", ["aGk=\u00e9", "\u00e9\u00e9\u00e9\u00e9", "aGk=\n\u2028"])
def test_a_base64_body_with_non_ascii_text_is_a_400(router: ModuleType, body: str) -> None:
    post = event("http_api_v2_post_base64")
    post["body"] = body
    result = router.handler(post, Context())
    assert result["statusCode"] == 400
    assert "base64" in json.loads(result["body"])["detail"]


def test_a_backend_field_in_latin1_reaches_the_caller_without_a_raise(router: ModuleType) -> None:
    latin = event("http_api_v2_get")
    latin["rawPath"] = latin["requestContext"]["http"]["path"] = "/v1/latin"
    result = router.handler(latin, Context())
    assert result["statusCode"] == 200
    assert result["headers"]["x-name"] == "caf\u00e9"
