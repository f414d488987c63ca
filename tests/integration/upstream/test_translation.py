"""Per-backend method override, templated headers and a JSON body template."""

from __future__ import annotations

import orjson
import pytest

from tests.integration.upstream.conftest import Reply, Scripted, gateway, write_infra

pytestmark = pytest.mark.anyio


async def test_get_on_the_gateway_calls_a_post_search(serve, tmp_path):
    svc = Scripted({"/users/7": Reply(json={"id": 7, "vip": True}), "/search": Reply(json={"hits": [1]})})
    route = {
        "id": "search",
        "path": "/v1/search/{term}",
        "compose": "group",
        "backends": [
            {"name": "user", "service": "svc", "path": "/users/7"},
            {
                "name": "search",
                "service": "svc",
                "path": "/search",
                "method": "POST",
                "headers": {"X-Api-Version": "2", "X-Term": "term={term}"},
                "body": {
                    "q": "{term}",
                    "owner": "{user.id}",
                    "vip": "{user.vip}",
                    "label": "u-{user.id}",
                    "limit": 10,
                },
            },
        ],
    }
    infra = write_infra(tmp_path, {"svc": serve(svc)}, [route])
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/search/caf%C3%A9", headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert response.json() == {"user": {"id": 7, "vip": True}, "search": {"hits": [1]}}
    search = next(s for s in svc.seen if s.path == "/search")
    assert search.method == "POST"
    assert search.headers["content-type"] == "application/json"
    assert search.headers["x-api-version"] == "2"
    assert search.headers["x-term"] == "term=café"  # its UTF-8 bytes
    assert orjson.loads(search.body) == {"q": "café", "owner": 7, "vip": True, "label": "u-7", "limit": 10}


async def test_caller_values_that_cannot_be_used_are_400(serve, tmp_path):
    svc = Scripted({"/x": Reply(json={})})
    routes = [
        {
            "id": "h",
            "path": "/v1/h/{v}",
            "compose": "group",
            "backends": [{"name": "x", "service": "svc", "path": "/x", "headers": {"X-V": "{v}"}}],
        },
        {
            "id": "p",
            "path": "/v1/p/{v}",
            "compose": "group",
            "backends": [{"name": "x", "service": "svc", "path": "/x/{v}"}],
        },
    ]
    infra = write_infra(tmp_path, {"svc": serve(svc)}, routes)
    async with gateway(infra) as (gw, _):
        line_break = await gw.get("/v1/h/a%0D%0Ab")
        dot_dot = await gw.get("/v1/p/%2E%2E")
        fine = await gw.get("/v1/h/a%20b")
    assert line_break.status_code == 400 and dot_dot.status_code == 400
    assert fine.status_code == 200
    assert [s.headers["x-v"] for s in svc.seen] == ["a b"]
