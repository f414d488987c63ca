"""Lambda answers at most 6 MB: a bigger backend answer must become a clean 502 problem from
the router, never an invocation error (which API Gateway turns into a bare 500)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs

import pytest

from tests.infra_files import write_infra
from tests.lambda_router import Context, load_router

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_LIMIT = 6 * 1024 * 1024
EVENT = json.loads((ROOT / "tests" / "events" / "http_api_v2_get.json").read_text())
ROUTES = """\
- id: blob
  path: /v1/blob
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: /blob}]
"""


async def blob(scope, receive, send) -> None:
    """`/blob?bytes=N&type=T`: N bytes of content type T."""
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode())
    size, kind = int(query["bytes"][0]), query["type"][0]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind.encode())]})
    await send({"type": "http.response.body", "body": b"\xff" * size if "octet" in kind else b"x" * size})


@pytest.fixture
def router(tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    infra = write_infra(tmp_path, {"svc": serve(blob)}, ROUTES)
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    module = load_router()
    return module


def invoke(router: ModuleType, size: int, kind: str) -> dict:
    event = copy.deepcopy(EVENT)
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/blob"
    event["rawQueryString"] = f"bytes={size}&type={kind}"
    return router.handler(event, Context())


def test_a_response_over_the_limit_is_a_502_problem(router) -> None:
    result = invoke(router, 6 * 1024 * 1024 + 1, "text/plain")
    assert result["statusCode"] == 502
    assert result["headers"]["content-type"] == "application/problem+json"
    assert json.loads(result["body"])["status"] == 502
    assert "x-request-id" in result["headers"]


def test_a_text_response_under_the_limit_fits_in_a_lambda_answer(router) -> None:
    result = invoke(router, 4 * 1024 * 1024, "text/plain")
    assert result["statusCode"] == 200
    assert len(json.dumps(result)) <= LAMBDA_LIMIT


def test_a_binary_response_that_base64_pushes_over_6_mb_is_a_502_problem(router) -> None:
    result = invoke(router, 4_900_000, "application/octet-stream")
    assert len(json.dumps(result)) <= LAMBDA_LIMIT or result["statusCode"] == 502
