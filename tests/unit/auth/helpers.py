"""Signing keys, token factories and an in-memory key store shared by the auth tests."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tollway.auth.keys import KeyMac
from tollway.auth.store import KeyRecord
from tollway.aws.errors import AwsError

HS_SECRET = "a-development-secret-of-32-bytes!"
# The deployment key secret of these tests: keys signed under it are "issued".
MAC = KeyMac(b"a-test-deployment-key-secret-0123456789")


class Signer:
    """A private key with its kid, able to sign tokens and publish its public JWK."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.algorithm = jwt.algorithms.RSAAlgorithm
        elif kind == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.algorithm = jwt.algorithms.ECAlgorithm
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.algorithm = jwt.algorithms.OKPAlgorithm
        self.alg = kind

    def jwk(self, **extra: Any) -> dict[str, Any]:
        public = json.loads(self.algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", **extra}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


def claims(iss: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": iss, "aud": "tollway", "sub": "user-1", "iat": now, "exp": now + 300, **extra}


def unsigned(payload: dict[str, Any], **header: Any) -> str:
    """A token with `alg: none` and an empty signature, as an attacker would send it."""
    import base64

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', **header})}.{part(payload)}."


class MemoryStore:
    """KeyLookup's `get`, over a dict, counting reads and keeping the deadlines it was given."""

    def __init__(self, *records: KeyRecord, fail: bool = False) -> None:
        self.records = {r.key_hash: r for r in records}
        self.reads = 0
        self.fail = fail
        self.deadlines: list[float | None] = []

    async def get(self, digest: str, *, deadline: float | None = None) -> KeyRecord | None:
        self.reads += 1
        self.deadlines.append(deadline)
        if self.fail:
            raise AwsError("ConnectionError")
        return self.records.get(digest)
