"""The JWKS endpoint goes down: cached keys keep verifying, unknown kids are 401 (not 500),
and an issuer whose keys were never fetched is 503. A JWKS that hangs or dribbles costs a
request its route's deadline, not more, and is its own problem (issue 18)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
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


def gateway(tmp_path: Path, backend: str, jwks_url: str, routes: str = ROUTES) -> httpx.AsyncClient:
    auth = f"""\
auth:
  jwt:
    - {{issuer: "http://127.0.0.1/idp", audience: tollway, jwks_url: "{jwks_url}", jwks_refresh_s: 1}}
"""
    infra = write_infra(tmp_path, {"svc": backend}, routes, auth=auth, plans=PLANS)
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


class FlakyJwks:
    """A JWKS endpoint that serves its keys, hangs, or dribbles its document a byte at a time."""

    def __init__(self, keys: list[dict]) -> None:
        self.mode = "serve"
        self.stop = threading.Event()
        self.hits = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                flaky.hits += 1
                document = json.dumps({"keys": keys}).encode()
                if flaky.mode == "hang":
                    flaky.stop.wait(10)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(document)))
                self.end_headers()
                if flaky.mode == "serve":
                    self.wfile.write(document)
                    return
                for byte in document:  # dribble: each byte well within any read timeout
                    if flaky.stop.wait(0.05):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


SHORT = ROUTES.replace("methods: [GET]", "methods: [GET]\n  timeout_ms: 400")
ISSUER_UNAVAILABLE = "https://tollway.dev/problems/issuer-unavailable"


def assert_issuer_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == ISSUER_UNAVAILABLE
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize("mode", ["hang", "dribble"])
async def test_a_jwks_that_hangs_or_dribbles_costs_the_route_its_deadline_not_more(
    tmp_path, serve, mode: str
) -> None:
    """Before: a hanging JWKS took 2 s (the fetch's own timeout) on a 400 ms route, a
    dribbling one as long as it dribbled (each byte reset the read timeout)."""
    jwks = FlakyJwks([SIGNER.jwk()])
    jwks.mode = mode
    try:
        client = gateway(tmp_path, serve(loopback_backend), jwks.url, SHORT)
        started = time.monotonic()
        response = await client.get("/v1/jwt", headers=bearer(SIGNER))
        elapsed = time.monotonic() - started
        assert_issuer_unavailable(response)
        # A bound, not a timing: 400 ms route, the old answers took 2 s and ~3 s.
        assert elapsed < 1.5, elapsed
    finally:
        jwks.close()


async def test_a_refetch_for_a_new_key_is_bounded_by_the_deadline_and_shared(tmp_path, serve) -> None:
    jwks = FlakyJwks([SIGNER.jwk()])
    try:
        client = gateway(tmp_path, serve(loopback_backend), jwks.url, SHORT)
        assert (await client.get("/v1/jwt", headers=bearer(SIGNER))).status_code == 200
        time.sleep(1.1)  # past jwks_refresh_s: an unknown kid may refetch
        jwks.mode = "hang"
        started = time.monotonic()
        answers = await asyncio.gather(*(client.get("/v1/jwt", headers=bearer(STRANGER)) for _ in range(5)))
        assert time.monotonic() - started < 1.5  # a 400 ms route: never the fetch's 2 s
        for answer in answers:
            assert_issuer_unavailable(answer)
        assert jwks.hits == 2  # one fetch for the five requests that waited on it
        # The keys it has keep verifying meanwhile, without waiting for the fetch.
        assert (await client.get("/v1/jwt", headers=bearer(SIGNER))).status_code == 200
    finally:
        jwks.close()
