"""One caller's cookies never reach the backend with another caller's request."""

from __future__ import annotations

import httpx
import orjson
from tollway.assemble import build_app
from tollway.settings import Settings

from tests.infra_files import write_infra

ROUTES = """\
- id: login
  path: /v1/login
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: /login}]
- id: echo
  path: /v1/echo
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: /echo}]
"""


async def backend(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json")]
    if scope["path"] == "/login":
        headers.append((b"set-cookie", b"session=alice-secret; Path=/"))
        body = b"{}"
    else:
        cookie = dict(scope["headers"]).get(b"cookie", b"").decode()
        body = orjson.dumps({"cookie": cookie})
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_backend_cookies_are_not_kept_between_callers(tmp_path, serve) -> None:
    # A host name: aiohttp's default cookie jar ignores cookies from an IP address.
    backend_url = serve(backend).replace("127.0.0.1", "localhost")
    infra = write_infra(tmp_path, {"svc": backend_url}, ROUTES)
    app = build_app(Settings(infra=infra, stage="dev", environ={}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as alice:
        login = await alice.get("/v1/login")
        assert login.headers["set-cookie"].startswith("session=alice-secret")  # alice gets hers
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as bob:
        echoed = await bob.get("/v1/echo")
    assert echoed.json() == {"cookie": ""}
