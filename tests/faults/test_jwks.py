"""The JWKS endpoint goes down: cached keys keep verifying, unknown kids are 401 (not 500),
and an issuer whose keys were never fetched is 503."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from tollway.assemble import build_app
from tollway.dev.serve import free_port, serve_in_thread
from tollway.settings import Settings

from tests.backends import loopback_backend
from tests.infra_files import write_infra
from tests.integration.auth.conftest import JwksApp
from tests.unit.auth.helpers import Signer

SIGNER, STRANGER = Signer("ES256", "known"), Signer("ES256", "unknown")
ROUTES = """\
- id: jwt
  path: /v1/jwt
  methods: [GET]
  auth: [jwt]
  backends: [{name: b, service: svc, path: /echo/jwt}]
"""
PLANS = "plans:\n  free: {}\n"


def gateway(tmp_path: Path, backend: str, jwks_url: str) -> httpx.AsyncClient:
    auth = f"""\
auth:
  jwt:
    - {{issuer: "http://127.0.0.1/idp", audience: tollway, jwks_url: "{jwks_url}", jwks_refresh_s: 1}}
"""
    infra = write_infra(tmp_path, {"svc": backend}, ROUTES, auth=auth, plans=PLANS)
    app = build_app(Settings(infra=infra, stage="dev", environ={}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://gw.test")


def bearer(signer: Signer) -> dict[str, str]:
    claims = {"iss": "http://127.0.0.1/idp", "aud": "tollway", "sub": "u1", "exp": int(time.time()) + 600}
    return {"authorization": f"Bearer {signer.sign(claims)}"}


async def test_cached_keys_survive_the_jwks_endpoint_going_down(tmp_path, serve) -> None:
    jwks = JwksApp(keys=[SIGNER.jwk()])
    served = serve_in_thread(jwks)
    client = gateway(tmp_path, serve(loopback_backend), served.url + "/jwks.json")
    assert (await client.get("/v1/jwt", headers=bearer(SIGNER))).status_code == 200
    served.stop()
    time.sleep(1.1)  # past jwks_refresh_s, so the unknown kid below does try the dead endpoint
    assert (await client.get("/v1/jwt", headers=bearer(SIGNER))).status_code == 200
    unknown = await client.get("/v1/jwt", headers=bearer(STRANGER))
    assert unknown.status_code == 401
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "invalid_token" in unknown.headers["www-authenticate"]


async def test_keys_never_fetched_are_503_with_a_problem(tmp_path, serve) -> None:
    client = gateway(tmp_path, serve(loopback_backend), f"http://127.0.0.1:{free_port()}/jwks.json")
    response = await client.get("/v1/jwt", headers=bearer(SIGNER))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
