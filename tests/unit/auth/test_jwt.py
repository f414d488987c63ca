"""Every way a JWT is refused, and JWKS fetching with restraint (a JWKS server on loopback)."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from tollway.auth.jwt import Jwks, build_jwt_verifier
from tollway.config.models import JwtIssuer
from tollway.errors import ServiceUnavailable, Unauthorized
from tollway.transport.exchange import AiohttpExchanger

from .helpers import HS_SECRET, Signer, claims, unsigned

IDP = "https://idp.example.com/"
DEV = "https://dev.tollway.local/"
RSA, EC, ED = Signer("RS256", "rsa-1"), Signer("ES256", "ec-1"), Signer("EdDSA", "ed-1")


# What a test opened (JWKS servers, exchangers), closed after it.
_opened: list[JwksServer | AiohttpExchanger] = []


@pytest.fixture(autouse=True)
async def _close_what_was_opened() -> AsyncIterator[None]:
    yield
    while _opened:
        opened = _opened.pop()
        if isinstance(opened, AiohttpExchanger):
            await opened.close()
        else:
            opened.close()


def exchanger() -> AiohttpExchanger:
    made = AiohttpExchanger()
    _opened.append(made)
    return made


class JwksServer:
    """A JWKS document on loopback, counting fetches."""

    def __init__(self, *signers: Signer, status: int = 200) -> None:
        self.keys = [s.jwk() for s in signers]
        self.status = status
        self.hits = 0
        self.raw: bytes | None = None  # a document of its own instead of {"keys": ...}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.hits += 1
                body = server.raw if server.raw is not None else json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        # Plain http on loopback, as gateway.yaml allows for development.
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        _opened.append(self)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def issuers(jwks_url: str = "https://idp.example.com/jwks.json", **idp) -> tuple[JwtIssuer, ...]:
    return (
        JwtIssuer(
            issuer=IDP,
            audience=["tollway", "other"],
            jwks_url=jwks_url,
            plan_claim="plan",
            default_plan="free",
            **idp,
        ),
        JwtIssuer(issuer=DEV, audience="tollway", hs256_secret_env="SECRET", leeway_s=10),
    )


def verifier(server: JwksServer | None = None, environ=None, **idp):
    server = server or JwksServer(RSA, EC, ED)
    environ = {"SECRET": HS_SECRET} if environ is None else environ
    return build_jwt_verifier(issuers(server.url, **idp), environ, exchanger())


async def refused(verify, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        await verify.verify(token)
    assert 'error="invalid_token"' in caught.value.headers["www-authenticate"]
    return caught.value.detail


@pytest.mark.parametrize("signer", [RSA, EC, ED], ids=lambda s: s.alg)
async def test_asymmetric_tokens_from_the_jwks_verify(signer):
    token = signer.sign(claims(IDP, aud="other", scope="a b", plan="pro"))
    identity = await verifier().verify(token)
    assert (identity.consumer, identity.plan, identity.scopes) == (
        f"{IDP}|user-1",
        "pro",
        frozenset({"a", "b"}),
    )


async def test_hs256_development_tokens_verify_with_the_secret():
    token = jwt.encode(claims(DEV, scope=["x", "y"]), HS_SECRET, algorithm="HS256")
    identity = await verifier().verify(token)
    assert identity.scopes == frozenset({"x", "y"}) and identity.plan == "free"


async def test_alg_none_is_refused():
    assert await refused(verifier(), unsigned(claims(IDP), kid="rsa-1")) == (
        "token algorithm is not allowed for this issuer"
    )
    assert (
        await refused(verifier(), unsigned(claims(DEV))) == "token algorithm is not allowed for this issuer"
    )


async def test_hs256_signed_with_the_public_rsa_key_is_refused():
    # PyJWT will not HMAC with a PEM, so forge the token by hand, as an attacker would.
    pem = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"rsa-1"}')
    payload = jwt.utils.base64url_encode(json.dumps(claims(IDP)).encode())
    signing_input = header + b"." + payload
    signature = jwt.utils.base64url_encode(hmac.new(pem, signing_input, "sha256").digest())
    token = (signing_input + b"." + signature).decode()
    assert await refused(verifier(), token) == "token algorithm is not allowed for this issuer"


async def test_a_jwk_declaring_another_algorithm_is_not_used():
    server = JwksServer()
    server.keys = [RSA.jwk(alg="RS512")]
    token = RSA.sign(claims(IDP))
    assert await refused(verifier(server, algorithms=["RS256", "RS512"]), token) == (
        "token is signed with an unknown key"
    )


async def test_unknown_kid_refetches_at_most_once_per_interval():
    server = JwksServer(RSA)
    clock = Clock()
    jwks = Jwks(
        server.url,
        exchanger(),
        refresh_s=30,
        max_age_s=3600,
        clock=clock,
    )
    assert await jwks.key("rsa-1", "RS256") is not None
    for _ in range(10):
        assert await jwks.key("rotated", "RS256") is None
    assert server.hits == 1
    clock.now += 30
    server.keys = [EC.jwk(kid="rotated")]
    assert await jwks.key("rotated", "ES256") is not None
    assert await jwks.key("rsa-1", "RS256") is None  # removed from the set
    assert server.hits == 2
    clock.now += 3600
    await jwks.key("rotated", "ES256")
    assert server.hits == 3  # the set is refetched when it is older than max_age_s


async def test_unknown_kid_and_missing_kid_are_refused():
    v = verifier()
    assert (
        await refused(v, Signer("RS256", "other").sign(claims(IDP))) == "token is signed with an unknown key"
    )
    no_kid = jwt.encode(claims(IDP), RSA.private, algorithm="RS256")
    assert await refused(v, no_kid) == "token has no key id (kid)"


async def test_a_signature_by_another_key_with_a_known_kid_is_refused():
    impostor = Signer("RS256", "rsa-1")
    assert await refused(verifier(), impostor.sign(claims(IDP))) == "token signature does not verify"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"iss": "https://evil.example.com/"}, "token issuer is not trusted"),
        ({"iss": None}, "token issuer is not trusted"),
        ({"aud": "someone-else"}, "token is not meant for this audience"),
        ({"aud": None}, "token lacks the aud claim"),
        ({"exp": -600}, "token has expired"),  # seconds from now, resolved when the test runs
        ({"exp": None}, "token lacks the exp claim"),
        ({"nbf": 600}, "token is not valid yet"),
        ({"sub": None}, "token has no usable sub claim"),
        ({"sub": 42}, "token has a malformed sub claim"),
        ({"sub": ""}, "token has no usable sub claim"),
        ({"scope": {"a": 1}}, "token has a malformed scope claim"),
        ({"plan": ["pro"]}, "token has a malformed plan claim"),
    ],
)
async def test_bad_claims_are_refused(change, detail):
    now = int(time.time())
    change = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in change.items()}
    body = {k: v for k, v in {**claims(IDP), **change}.items() if v is not None}
    assert await refused(verifier(), RSA.sign(body)) == detail


async def test_leeway_tolerates_small_clock_skew():
    now = int(time.time())
    token = jwt.encode(claims(DEV, exp=now - 5, nbf=now + 5), HS_SECRET, algorithm="HS256")
    assert (await verifier().verify(token)).consumer == f"{DEV}|user-1"


@pytest.mark.parametrize(
    "token", ["eyJ", "eyJhbGciOiJIUzI1NiJ9.e30", "eyJ.e30.x", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig", "a.b.c"]
)
async def test_malformed_tokens_are_refused(token):
    assert await refused(verifier(), token) == "malformed token"


async def test_a_missing_secret_refuses_that_issuers_tokens():
    token = jwt.encode(claims(DEV), HS_SECRET, algorithm="HS256")
    assert await refused(verifier(environ={}), token) == "tokens of this issuer cannot be verified here"


async def test_a_wrong_secret_does_not_verify():
    token = jwt.encode(claims(DEV), "another-secret-that-is-32-bytes!!", algorithm="HS256")
    assert await refused(verifier(), token) == "token signature does not verify"


async def test_jwks_unavailable_is_503_but_known_keys_survive_a_failed_refresh():
    server = JwksServer(RSA, status=500)
    with pytest.raises(ServiceUnavailable):
        await verifier(server).verify(RSA.sign(claims(IDP)))
    server = JwksServer(RSA)
    clock = Clock()
    jwks = Jwks(
        server.url,
        exchanger(),
        refresh_s=1,
        max_age_s=1,
        clock=clock,
    )
    assert await jwks.key("rsa-1", "RS256") is not None
    server.status = 503
    clock.now += 5
    assert await jwks.key("rsa-1", "RS256") is not None
    assert server.hits == 2


def test_issuer_config_rejects_hs256_from_a_jwks_and_other_algorithms_for_a_secret():
    with pytest.raises(ValueError, match="HS256 needs hs256_secret_env"):
        JwtIssuer(issuer=IDP, audience="a", jwks_url="https://x.example/j", algorithms=["RS256", "HS256"])
    with pytest.raises(ValueError, match="verifies HS256 only"):
        JwtIssuer(issuer=IDP, audience="a", hs256_secret_env="S", algorithms=["RS256"])
    with pytest.raises(ValueError, match="must be https"):
        JwtIssuer(issuer=IDP, audience="a", jwks_url="http://idp.example.com/jwks.json")


async def test_each_issuer_namespaces_its_consumers_unless_the_config_maps_them():
    token = RSA.sign(claims(IDP, sub="acme"))
    assert (await verifier().verify(token)).consumer == "https://idp.example.com/|acme"
    assert (await verifier(consumer_prefix="idp").verify(token)).consumer == "idp|acme"
    # On purpose: the claim is the consumer id, shared with an API key's consumer "acme".
    assert (await verifier(consumer_prefix="").verify(token)).consumer == "acme"


def test_an_issuer_that_cannot_prefix_consumer_ids_needs_an_explicit_prefix():
    with pytest.raises(ValueError, match="give consumer_prefix"):
        JwtIssuer(issuer="https://a|b/", audience="x", hs256_secret_env="S")
    with pytest.raises(ValueError, match="consumer_prefix"):
        JwtIssuer(issuer=IDP, audience="x", hs256_secret_env="S", consumer_prefix="a|b")
    assert JwtIssuer(issuer="https://a|b/", audience="x", hs256_secret_env="S", consumer_prefix="ab")


@pytest.mark.parametrize(
    "extra",
    [
        {"scope": ["a b"]},  # one list element that a backend would read as two scopes
        {"scope": ["a", "b\tc"]},
        {"scope": ["a\nx-injected: 1"]},
        {"scope": ["a", ""]},
        {"scope": ["caf\u00e9"]},
        {"scope": "a\nb"},
        {"scope": 'a "b"'},
        {"sub": "user\r\nx-injected: 1"},
        {"sub": "user\x00"},
        {"sub": "user\u200b"},  # a format character: invisible in logs and reports
        {"sub": "x" * 257},
        {"plan": "pro\n"},
    ],
)
async def test_a_claim_that_is_not_a_clean_value_is_a_malformed_token(extra):
    detail = await refused(verifier(), RSA.sign(claims(IDP, **extra)))
    assert "claim" in detail


async def test_space_separated_scopes_are_read_as_rfc_6749_scope_tokens():
    identity = await verifier().verify(RSA.sign(claims(IDP, scope=" a  b:c ")))
    assert identity.scopes == frozenset({"a", "b:c"})


async def test_a_jwks_document_nested_too_deeply_keeps_the_keys_it_had():
    """A JWKS document under the size limit can nest deeper than Python's json reader
    recurses: its RecursionError escaped the fetch's failure handling, so every request waiting
    on the refresh of a stale set got a 500 (an unhandled error), not the keys it had."""
    server = JwksServer(RSA)
    clock = Clock()
    jwks = Jwks(server.url, exchanger(), refresh_s=1, max_age_s=1, clock=clock)
    assert await jwks.key("rsa-1", "RS256") is not None
    server.raw = b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    clock.now += 5
    assert await jwks.key("rsa-1", "RS256") is not None
    assert server.hits == 2
