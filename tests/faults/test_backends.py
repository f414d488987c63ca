"""Backends that reset, hang, dribble, flood or speak garbage: a 502 or a 504 on time,
a problem body, and never the backend's bytes or a 500."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tollway.assemble import build_app
from tollway.settings import Settings

from tests.infra_files import write_infra

ROUTES = """\
- id: proxied
  path: /v1/proxied
  methods: [GET, POST]
  public: true
  timeout_ms: 600
  backends: [{name: b, service: svc, path: /x, retry: {attempts: 2, backoff_ms: 10}}]
- id: composed
  path: /v1/composed
  methods: [GET]
  public: true
  timeout_ms: 600
  compose: group
  backends: [{name: b, service: svc, path: /x}]
"""
EXPECTED = {"reset": 502, "hang": 504, "dribble": 504, "flood": 502, "garbage": 502}


def gateway(tmp_path: Path, url: str) -> httpx.AsyncClient:
    # The default response limit (5 MB, under Lambda's 6 MB) is what stops the 10 MB flood.
    infra = write_infra(tmp_path, {"svc": url}, ROUTES)
    app = build_app(Settings(infra=infra, stage="dev", environ={}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://gw.test")


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
@pytest.mark.parametrize("path", ["/v1/proxied", "/v1/composed"])
async def test_a_misbehaving_backend_gets_its_documented_answer_on_time(
    tmp_path, raw_backend, behaviour, path
):
    client = gateway(tmp_path, raw_backend(behaviour).url)
    started = time.monotonic()
    response = await client.get(path)
    elapsed = time.monotonic() - started
    assert response.status_code == EXPECTED[behaviour], response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "x-request-id" in response.headers
    assert b"xxxx" not in response.content and b"NOT HTTP" not in response.content
    # The route's 600 ms deadline bounds every fault, the flood included.
    assert elapsed < 1.5, elapsed


async def test_a_refused_post_is_502_at_once(tmp_path):
    from tollway.dev.serve import free_port

    client = gateway(tmp_path, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    response = await client.post("/v1/proxied", content=b"{}")
    assert response.status_code == 502
    assert time.monotonic() - started < 0.5
