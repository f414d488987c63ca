"""grpcs://: the call is TLS, verified against the roots grpc trusts. A test CA is made here;
each case runs in a child process, since grpc reads its roots once per process
(GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.grpc_backends import SERVICE, echo_get

CALL = """\
import asyncio, json, sys
from pathlib import Path
import httpx
from tests.integration.upstream.conftest import gateway, write_infra
from tests.grpc_backends import copy_protos

async def main():
    route = {"id": "get", "path": "/v1/things/{id}", "backends": [
        {"name": "t", "service": "t", "grpc": "tollway.test.v1.Things/Get", "body": {"id": "{id}"}}]}
    infra = copy_protos(write_infra(Path(sys.argv[2]), {"t": sys.argv[1]}, [route]))
    async with gateway(infra) as (gw, _):
        response = await gw.get("/v1/things/secure")
    print(json.dumps({"status": response.status_code, "body": response.json()}))

asyncio.run(main())
"""


def certificate(tmp_path: Path) -> tuple[bytes, bytes, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): (key PEM, cert PEM, cert file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollway test")])
    now = datetime.datetime.now(datetime.UTC)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(loopback, False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    path = tmp_path / "ca.pem"
    path.write_bytes(cert_pem)
    return key_pem, cert_pem, path


@pytest.fixture
def tls_server(tmp_path: Path):
    key_pem, cert_pem, ca = certificate(tmp_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {"Get": grpc.unary_unary_rpc_method_handler(echo_get)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    server.start()
    yield f"grpcs://127.0.0.1:{port}", ca
    server.stop(0)


def call(url: str, tmp_path: Path, roots: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"}
    if roots is not None:
        env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(roots)
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", CALL, url, str(tmp_path / "infra")],
        capture_output=True, text=True, env=env, cwd=root, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_grpcs_calls_over_verified_tls(tls_server, tmp_path: Path) -> None:
    url, ca = tls_server
    answer = call(url, tmp_path, ca)
    assert answer == {"status": 200, "body": {"id": "secure", "displayName": "thing secure"}}


def test_grpcs_refuses_a_certificate_it_cannot_verify(tls_server, tmp_path: Path) -> None:
    url, _ = tls_server
    answer = call(url, tmp_path, None)  # grpc's bundled roots: the test CA is not among them
    assert answer["status"] == 502
