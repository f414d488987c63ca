"""The cost of the auth step on a warm container: table reads and µs per request.

    uv run python -m tests.integration.auth.measure_auth_cost

Starts a moto server on loopback, creates the keys table from template.yaml, issues a key
and times `GatewayAuthenticator.authenticate` for a cached API key and for JWTs of each
algorithm (JWKS already fetched), counting the DynamoDB calls the lean caller sends.
Not collected by pytest: it measures, it does not assert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import jwt
from moto.server import ThreadedMotoServer
from tollway.auth.authenticator import GatewayAuthenticator
from tollway.auth.jwt import build_jwt_verifier
from tollway.auth.keys import KeyMac, KeyVerifier, key_hash
from tollway.auth.store import KeyLookup, new_record
from tollway.config.compile import compile_infra
from tollway.config.models import ApiKeys, JwtIssuer
from tollway.core.messages import Request
from tollway.dev.serve import free_port
from tollway.dev.template import provision, read_template
from tollway.tools.keystore import KeyStore
from tollway.transport.exchange import AiohttpExchanger

from tests.lean import dynamo_caller

from ...unit.auth.helpers import HS_SECRET, Signer
from ...unit.auth.test_jwt import JwksServer

ROOT = Path(__file__).resolve().parents[3]
N = 20_000
IDP, DEV = "https://idp.example.com/", "https://dev.example.com/"


async def timed(auth, request, route) -> tuple[float, float]:
    for _ in range(500):
        await auth.authenticate(request, route)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(N):
        await auth.authenticate(request, route)
    return (time.perf_counter() - wall) / N * 1e6, (time.process_time() - cpu) / N * 1e6


async def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1"})
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        dynamodb = boto3.client("dynamodb", endpoint_url=url)
        sqs = boto3.client("sqs", endpoint_url=url)
        env = provision(read_template(ROOT / "template.yaml"), dynamodb, sqs)
        store = KeyStore(dynamodb, env.environment["TOLLWAY_KEYS_TABLE"])
        mac = KeyMac(b"measure-auth-cost-deployment-secret")
        key, key_id = mac.new_key()
        store.put(new_record(key_hash(key), key_id, "acme", "free", ["users:read"], datetime.now(UTC), None))
        http = AiohttpExchanger()
        caller = dynamo_caller(http, dynamodb)

        signers = {alg: Signer(alg, f"k-{alg}") for alg in ("RS256", "ES256", "EdDSA")}
        jwks = JwksServer(*signers.values())  # on loopback
        issuers = (
            JwtIssuer(issuer=IDP, audience="tollway", jwks_url=jwks.url),
            JwtIssuer(issuer=DEV, audience="tollway", hs256_secret_env="S"),
        )
        config = compile_infra(ROOT / "infra", "dev", {})
        route = next(r for r in config.routes if r.id == "users.get")
        auth = GatewayAuthenticator(
            KeyVerifier(KeyLookup(caller, store.table), ApiKeys(cache_ttl_s=60), mac=mac),
            build_jwt_verifier(issuers, {"S": HS_SECRET}, http),
            config.plans,
        )

        def request(headers: dict[str, str]) -> Request:
            return Request("GET", "/v1/users/1", b"", headers, b"", "127.0.0.1", "https", "r")

        exp = int(time.time()) + 3600
        claims = {"aud": "tollway", "sub": "u", "exp": exp, "scope": "users:read"}
        cases = {"API key (cached)": request({"x-api-key": key})}
        cases["JWT HS256"] = request(
            {"authorization": "Bearer " + jwt.encode({"iss": DEV, **claims}, HS_SECRET, algorithm="HS256")}
        )
        for alg, signer in signers.items():
            cases[f"JWT {alg} (JWKS cached)"] = request(
                {"authorization": "Bearer " + signer.sign({"iss": IDP, **claims})}
            )
        print(f"{'credential':<26} {'wall µs':>8} {'cpu µs':>8}   (median of 3 runs of {N})")
        for name, req in cases.items():
            runs = [await timed(auth, req, route) for _ in range(3)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"{name:<26} {wall:8.1f} {cpu:8.1f}")
        total = 3 * (N + 500) * len(cases)
        print(f"DynamoDB calls during {total} authentications: {caller.calls} (GetItem)")
        await http.close()
        jwks.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
