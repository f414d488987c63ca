"""The metadata a gRPC service receives is what an HTTP backend gets as headers (SPEC §5, §7):
the gateway's fields, the backend's own headers, the caller's other fields; never the
caller's credentials, never a caller's field in the gateway's namespaces, never a field
gRPC reserves for itself."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.grpc_backends import ThingsServer
from tests.integration.grpc.conftest import grpc_infra
from tests.integration.upstream.conftest import gateway

ROUTE = {
    "id": "get",
    "path": "/v1/things/{id}",
    "timeout_ms": 900,
    "backends": [
        {
            "name": "t",
            "service": "t",
            "grpc": "tollway.test.v1.Things/Get",
            "body": {"id": "{id}"},
            "headers": {"x-tenant": "tenant-{id}"},
        }
    ],
}
FORGED = "forged-by-the-caller"


async def test_the_service_gets_the_http_backend_headers_as_metadata(
    tmp_path: Path, things: ThingsServer
) -> None:
    caller = [
        ("authorization", "Bearer secret-token"),
        ("x-api-key", "secret-key"),
        ("x-request-id", "req-123"),
        ("x-tollway-consumer", FORGED),
        ("x-tollway-consumer-bin", base64.b64encode(FORGED.encode()).decode()),
        ("x-forwarded-for", FORGED),
        ("forwarded", FORGED),
        ("grpc-timeout", "99S"),
        ("grpc-encoding", "gzip"),
        ("content-type", "application/json"),
        ("te", "trailers"),
        ("accept", "application/json"),
        ("range", "bytes=0-1"),
        ("content-encoding", "gzip"),
        ("x-custom", "kept"),
        ("x-data-bin", base64.b64encode(b"\x00\x01bytes").decode()),
        ("x-broken-bin", "not base64!"),
        ("x-tenant", FORGED),
    ]
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
        response = await gw.get("/v1/things/7", headers=caller)
    assert response.status_code == 200
    [call] = things.calls
    got: dict[str, list[str | bytes]] = {}
    for name, value in call.metadata:
        got.setdefault(name, []).append(value)
    assert got["x-request-id"] == ["req-123"]
    assert got["x-tollway-consumer"] == ["c1"]
    assert got["x-forwarded-for"] == ["127.0.0.1"] and got["x-forwarded-proto"] == ["http"]
    assert got["x-forwarded-host"] == ["gw.test"]
    assert got["x-tenant"] == ["tenant-7"]  # the backend's own header wins over the caller's
    assert got["x-custom"] == ["kept"]
    assert got["x-data-bin"] == [b"\x00\x01bytes"]
    dropped = ("authorization", "x-api-key", "forwarded", "x-broken-bin", "te", "accept", "range")
    for name in (*dropped, "content-encoding", "grpc-encoding"):
        assert name not in got, name
    assert "x-tollway-consumer-bin" not in got
    values = [v.decode("latin-1") if isinstance(v, bytes) else v for vs in got.values() for v in vs]
    assert not [v for v in values if FORGED in v]
    assert "secret" not in repr(call.metadata)
    # The caller's grpc-timeout (99 s) did not become the call's: the route's 900 ms did (give or
    # take the encoding's rounding: `time_remaining` once read 0.9000x under load).
    assert call.time_remaining is not None and call.time_remaining <= 0.91


async def test_a_value_that_is_not_printable_ascii_goes_as_bytes(
    tmp_path: Path, things: ThingsServer
) -> None:
    # A consumer id (say, a JWT subject) and a caller's field holding UTF-8: gRPC metadata
    # values are printable ASCII, so each goes under its name plus -bin, as its bytes.
    # (The test authenticator names the consumer after this field: latin-1 text "josé".)
    headers = [(b"x-consumer", "josé".encode("latin-1")), (b"x-note", "café".encode())]
    async with gateway(grpc_infra(tmp_path, {"t": things.url}, [ROUTE])) as (gw, _):
        response = await gw.get("/v1/things/7", headers=headers)
    assert response.status_code == 200
    got = dict(things.calls[0].metadata)
    assert got["x-tollway-consumer-bin"] == "josé".encode()  # its UTF-8, as HTTP backends get it
    assert got["x-note-bin"] == "café".encode()
    assert "x-tollway-consumer" not in got
