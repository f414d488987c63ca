"""Caller values substituted into backend URLs never change scheme, host, port or base path.

Each payload is sent byte for byte to the gateway under uvicorn (no client normalizes it);
the recording backend shows the raw path it received, and a decoy server on another port
proves that nothing went anywhere else.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from .conftest import Fixture, asgi_get, raw_request

PAYLOADS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "a%2f..%2f..%2fadmin",
    "%2f%2fevil.example",
    "..%2f..%2fadmin",
    "%5c..%5cadmin",
    "\\..\\admin",
    "@127.0.0.1:{decoy_port}",
    "%40127.0.0.1:{decoy_port}",
    "evil.example%40127.0.0.1",
    "http:%2f%2f127.0.0.1:{decoy_port}%2fx",
    "%0d%0aHost:%20127.0.0.1:{decoy_port}",
    "%00",
    "%23fragment",
    "%3fq=1",
    "%25252e%25252e",
    "%ef%bc%8f",  # U+FF0F FULLWIDTH SOLIDUS
    "%e2%88%95",  # U+2215 DIVISION SLASH
    "%ef%bc%8e%ef%bc%8e",  # two U+FF0E FULLWIDTH FULL STOP
    "%c0%ae%c0%ae",  # overlong UTF-8 dots
    "%e2%80%a5",  # U+2025 TWO DOT LEADER
    ":{decoy_port}",
    "x" * 2000,
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_path_parameter_stays_one_segment_under_the_configured_path(gw: Fixture, payload: str) -> None:
    decoy_port = urlsplit(gw.decoy_url).port
    payload = payload.format(decoy_port=decoy_port)
    status, _ = raw_request(gw.url, f"/v1/users/{payload}?extra={payload}")
    assert status in (200, 400, 404), status
    assert gw.decoy.seen == []
    if status != 200:
        assert gw.backend.seen == []
        return
    [got] = gw.backend.seen
    prefix = "/base/users/"
    assert got["raw_path"].startswith(prefix), got["raw_path"]
    segment = got["raw_path"][len(prefix) :]
    assert segment and "/" not in segment and "\\" not in segment, segment
    assert unquote(segment) not in (".", ".."), segment
    # The templated query value is one encoded value: it adds no parameter of its own.
    assert got["query"].split("&")[0].startswith("q=") and "=" not in got["query"].split("&")[0][2:]
    assert dict(got["headers"])["host"] == urlsplit(gw.backend_url).netloc


@pytest.mark.parametrize("payload", ["..", "%2e%2e", ".%2E", "."])
def test_dot_segments_are_refused_before_any_backend(gw: Fixture, payload: str) -> None:
    status, head = raw_request(gw.url, f"/v1/users/{payload}")
    assert status == 400
    assert b"application/problem+json" in head
    assert gw.backend.seen == [] and gw.decoy.seen == []


@pytest.mark.parametrize(
    "query",
    [
        "a=1%26b=2",
        "@127.0.0.1:{decoy_port}",
        "x=http://127.0.0.1:{decoy_port}/",
        "%0d%0aHost:%20evil",
        "a=%23b",
    ],
)
def test_the_callers_query_is_passed_as_a_query_only(gw: Fixture, query: str) -> None:
    query = query.format(decoy_port=urlsplit(gw.decoy_url).port)
    status, _ = raw_request(gw.url, f"/v1/users/1?{query}")
    assert status == 200
    [got] = gw.backend.seen
    assert got["raw_path"] == "/base/users/1"
    assert dict(got["headers"])["host"] == urlsplit(gw.backend_url).netloc
    assert gw.decoy.seen == []


async def test_the_callers_host_is_never_the_backends_host(gw: Fixture) -> None:
    decoy = urlsplit(gw.decoy_url).netloc
    response = await gw.client.get(
        "/v1/users/1",
        headers={
            "host": decoy,
            "x-forwarded-host": decoy,
            "forwarded": f"host={decoy}",
            "x-forwarded-for": "10.0.0.1",
        },
    )
    assert response.status_code == 200
    [got] = gw.backend.seen
    headers = dict(got["headers"])
    assert headers["host"] == urlsplit(gw.backend_url).netloc
    assert headers["x-forwarded-host"] == decoy  # reported as the caller's, never dialled
    assert "forwarded" not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the peer, not the caller's claim
    assert gw.decoy.seen == []


async def test_an_absolute_uri_host_is_ignored(gw: Fixture) -> None:
    """`GET http://other-host/...`: the target's authority names nobody the gateway calls."""
    decoy = urlsplit(gw.decoy_url).netloc
    status, _ = raw_request(gw.url, f"http://{decoy}/v1/users/1")
    assert status in (200, 404)
    assert gw.decoy.seen == []


@pytest.mark.parametrize("raw", [b"a=1\x01", b"a=b c", b"a=\r\nHost: evil", b"x=\x7f&y=\x00"])
async def test_a_query_with_bytes_no_url_may_carry_is_forwarded_percent_encoded(
    gw: Fixture, raw: bytes
) -> None:
    status, headers = await asgi_get(gw.local_app, "/v1/users/1", raw)
    assert status == 200 and "x-request-id" in headers
    [got] = gw.backend.seen
    forwarded = got["query"].split("&", 1)[1]
    assert forwarded == "".join(chr(b) if 0x20 < b < 0x7F else f"%{b:02X}" for b in raw)
    assert dict(got["headers"])["host"] == urlsplit(gw.backend_url).netloc
