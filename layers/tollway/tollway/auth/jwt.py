"""JWT bearer tokens: one verifier per issuer of gateway.yaml, keys from a JWKS or a secret.

The issuer is chosen by the token's unverified `iss`; everything else is checked against
that issuer only: the algorithm against its allow-list (so `none` and HS/RS confusion
never verify), the signature with PyJWT, then `iss`, `aud`, `exp` and `nbf` with the
issuer's leeway. JWKS are fetched through the container's exchanger and kept for
`jwks_max_age_s`; an unknown `kid` refetches them at most once per `jwks_refresh_s`.

A fetch is one task per issuer, bounded as a whole (`JWKS_TIMEOUT_S`, `JWKS_MAX_BYTES`,
so a dribbling endpoint cannot stretch it), and shared: each request that needs it
waits only until its own deadline, then answers 503 `issuer-unavailable` if it still
cannot check its token, while the fetch goes on for the requests that follow.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidSubjectError,
    MissingRequiredClaimError,
    PyJWKError,
    PyJWTError,
)

from tollway.auth.challenge import invalid_token
from tollway.errors import IssuerUnavailable
from tollway.observability import logger
from tollway.transport.exchange import ExchangeError, Exchanger

if TYPE_CHECKING:
    from tollway.table.auth import JwtIssuer

ASYMMETRIC = ("RS256", "ES256", "EdDSA")
JWKS_TIMEOUT_S = 2.0
JWKS_MAX_BYTES = 256 * 1024
MAX_CLAIM_CHARS = 256
# A consumer id is a key of the quota and usage tables and a usage event field (<= 256).
MAX_CONSUMER_CHARS = 256
MAX_SCOPES_CHARS = 8192
# RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and `\`.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


@dataclass(frozen=True, slots=True)
class Identity:
    consumer: str
    plan: str
    scopes: frozenset[str]


class Jwks:
    """One issuer's signing keys by `kid`, fetched lazily and refreshed with restraint."""

    def __init__(
        self,
        url: str,
        exchanger: Exchanger,
        *,
        refresh_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.exchanger = exchanger
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._prepared: dict[tuple[str, str], jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._fetching: asyncio.Future[None] | None = None

    async def key(self, kid: str, alg: str, deadline: float | None = None) -> jwt.PyJWK | None:
        """`deadline` (time.monotonic() seconds): how long this request may wait for a fetch."""
        now = self.clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.max_age_s
        wanted = (stale or kid not in self._keys) and (self._fetching is not None or self._may_fetch(now))
        if wanted and not await self._refreshed(deadline) and kid not in self._keys:
            raise IssuerUnavailable("the token issuer's keys could not be fetched in time; try again")
        if self._fetched_at is None:
            raise IssuerUnavailable("the token issuer's keys are unavailable; try again shortly")
        return self._prepare(kid, alg)

    def forget(self) -> None:
        """Drop the keys fetched so far: the next token fetches the set again (SnapStart restore)."""
        self._keys, self._prepared = {}, {}
        self._fetched_at = self._attempted_at = None

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.refresh_s

    async def _refreshed(self, deadline: float | None) -> bool:
        """Start a fetch unless one is running, and wait for it until `deadline`: False if it
        had not ended by then (it goes on, for the requests that follow)."""
        if self._fetching is None:
            self._attempted_at = self.clock()
            self._fetching = fetching = asyncio.ensure_future(self._fetch())
            fetching.add_done_callback(self._fetched)
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(self._fetching), wait)
        except TimeoutError:
            return False
        return True

    def _fetched(self, fetching: asyncio.Future[None]) -> None:
        if self._fetching is fetching:
            self._fetching = None

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(JWKS_TIMEOUT_S):
                document = await self._download()
            keys = json.loads(document)["keys"]
            if not isinstance(keys, list):
                raise ValueError("'keys' is not a list")
        except (TimeoutError, ExchangeError, ValueError, KeyError, TypeError, RecursionError) as exc:
            # Keep serving the keys we have: an issuer's hiccup must not log everyone out
            # (RecursionError: a document nested deeper than json reads).
            logger.warning("JWKS fetch failed", extra={"jwks_url": self.url, "error": str(exc)})
            return
        # Symmetric ("oct") keys in a public document would let anyone sign: never use one.
        self._keys = {
            k["kid"]: k
            for k in keys
            if isinstance(k, dict)
            and isinstance(k.get("kid"), str)
            and k.get("use", "sig") == "sig"
            and k.get("kty") != "oct"
        }
        self._prepared = {}
        self._fetched_at = self._attempted_at

    async def _download(self) -> bytes:
        accept = [("accept", "application/json")]
        response = await self.exchanger.request(
            "GET", self.url, accept, None, decode=True, timeout=JWKS_TIMEOUT_S
        )
        try:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            document = b""
            async for chunk in response.chunks():
                document += chunk
                if len(document) > JWKS_MAX_BYTES:
                    raise ValueError(f"more than {JWKS_MAX_BYTES} bytes")
        finally:
            await response.close()
        return document

    def _prepare(self, kid: str, alg: str) -> jwt.PyJWK | None:
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        jwk = self._keys.get(kid)
        if jwk is None or jwk.get("alg", alg) != alg:
            return None
        try:
            prepared = jwt.PyJWK(jwk, algorithm=alg)
        except (PyJWKError, PyJWTError, ValueError, TypeError):
            return None
        self._prepared[(kid, alg)] = prepared
        return prepared


class IssuerVerifier:
    def __init__(self, issuer: JwtIssuer, *, jwks: Jwks | None = None, secret: str | None = None) -> None:
        self.issuer = issuer
        self.jwks = jwks
        self.secret = secret
        prefix = issuer.issuer if issuer.consumer_prefix is None else issuer.consumer_prefix
        self.consumer_prefix = f"{prefix}|" if prefix else ""
        default = ASYMMETRIC if issuer.jwks_url else ("HS256",)
        self.algorithms = frozenset(issuer.algorithms or default)
        self.audience = issuer.audience

    async def verify(
        self, token: str, header: Mapping[str, Any], deadline: float | None = None
    ) -> dict[str, Any]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise invalid_token("token algorithm is not allowed for this issuer")
        key: Any
        if self.jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise invalid_token("token has no key id (kid)")
            key = await self.jwks.key(kid, alg, deadline)
            if key is None:
                raise invalid_token("token is signed with an unknown key")
        elif self.secret is not None and alg == "HS256":
            key = self.secret
        else:
            raise invalid_token("tokens of this issuer cannot be verified here")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer.issuer,
                leeway=self.issuer.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except ExpiredSignatureError as exc:
            raise invalid_token("token has expired") from exc
        except ImmatureSignatureError as exc:
            raise invalid_token("token is not valid yet") from exc
        except InvalidAudienceError as exc:
            raise invalid_token("token is not meant for this audience") from exc
        except InvalidIssuerError as exc:
            raise invalid_token("token issuer does not match") from exc
        except InvalidSignatureError as exc:
            raise invalid_token("token signature does not verify") from exc
        except InvalidSubjectError as exc:
            raise invalid_token("token has a malformed sub claim") from exc
        except MissingRequiredClaimError as exc:
            raise invalid_token(f"token lacks the {exc.claim} claim") from exc
        except PyJWTError as exc:
            raise invalid_token("malformed token") from exc

    def identity(self, claims: Mapping[str, Any]) -> Identity:
        """Claims are values, not header text: a value a backend could read two ways (a
        control character, a scope holding a space) makes the token malformed (401)."""
        issuer = self.issuer
        consumer = claims.get(issuer.consumer_claim)
        if not isinstance(consumer, str) or not _printable(consumer):
            raise invalid_token(f"token has no usable {issuer.consumer_claim} claim")
        consumer = self.consumer_prefix + consumer
        if len(consumer) > MAX_CONSUMER_CHARS:
            raise invalid_token(f"token's {issuer.consumer_claim} claim is too long")
        raw = claims.get(issuer.scopes_claim)
        if raw is None:
            scopes: frozenset[str] = frozenset()
        elif isinstance(raw, str) and len(raw) <= MAX_SCOPES_CHARS:
            # RFC 6749 separates scopes by spaces; any other character is checked below.
            scopes = frozenset(s for s in raw.split(" ") if s)
        elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
            scopes = frozenset(raw)
        else:
            raise invalid_token(f"token has a malformed {issuer.scopes_claim} claim")
        if not all(SCOPE_TOKEN.match(s) for s in scopes):
            raise invalid_token(f"token has a malformed {issuer.scopes_claim} claim")
        plan = issuer.default_plan
        if issuer.plan_claim is not None and claims.get(issuer.plan_claim) is not None:
            plan = claims[issuer.plan_claim]
            if not isinstance(plan, str) or not _printable(plan):
                raise invalid_token(f"token has a malformed {issuer.plan_claim} claim")
        return Identity(consumer, plan, scopes)


def _printable(value: str) -> bool:
    """Non-empty, bounded, and without a control, format or unassigned character, nor a
    line or paragraph separator (U+2028, U+2029: line ends to JavaScript and to logs)."""
    return 0 < len(value) <= MAX_CLAIM_CHARS and not any(
        unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" for c in value
    )


class JwtVerifier:
    """Every configured issuer, chosen per token by its `iss` claim."""

    def __init__(self, issuers: Mapping[str, IssuerVerifier]) -> None:
        self.issuers = dict(issuers)

    async def verify(self, token: str, deadline: float | None = None) -> Identity:
        try:
            unverified = jwt.decode_complete(token, options={"verify_signature": False})
        except PyJWTError as exc:
            raise invalid_token("malformed token") from exc
        iss = unverified["payload"].get("iss")
        verifier = self.issuers.get(iss) if isinstance(iss, str) else None
        if verifier is None:
            raise invalid_token("token issuer is not trusted")
        claims = await verifier.verify(token, unverified["header"], deadline)
        return verifier.identity(claims)


def build_jwt_verifier(
    issuers: tuple[JwtIssuer, ...], environ: Mapping[str, str], exchanger: Exchanger
) -> JwtVerifier:
    built: dict[str, IssuerVerifier] = {}
    for issuer in issuers:
        if issuer.jwks_url is not None:
            jwks = Jwks(
                issuer.jwks_url, exchanger, refresh_s=issuer.jwks_refresh_s, max_age_s=issuer.jwks_max_age_s
            )
            built[issuer.issuer] = IssuerVerifier(issuer, jwks=jwks)
            continue
        secret = environ.get(issuer.hs256_secret_env or "")
        if not secret:
            logger.warning(
                "JWT secret variable is not set: this issuer's tokens will be refused",
                extra={"issuer": issuer.issuer, "variable": issuer.hs256_secret_env},
            )
        elif len(secret.encode()) < 32:
            logger.warning(
                "JWT secret is shorter than 32 bytes: fit for development only",
                extra={"issuer": issuer.issuer, "variable": issuer.hs256_secret_env},
            )
        built[issuer.issuer] = IssuerVerifier(issuer, secret=secret or None)
    return JwtVerifier(built)
