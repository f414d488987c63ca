"""Who is calling: the credential a request presents, checked, as a `Principal`.

A credential arrives as `X-API-Key: <key>` or `Authorization: Bearer <key or JWT>`; a
JWT is told from a key by its shape (three base64url parts, the first a JSON object).
The route's accepted kinds are checked before any lookup, so a credential the route
would refuse costs no table read and no signature check.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from tollway.auth.challenge import invalid_token, missing
from tollway.auth.keys import KeyMac, KeyVerifier
from tollway.auth.store import KeyLookup
from tollway.core.messages import Request
from tollway.core.principal import Principal
from tollway.errors import Forbidden
from tollway.observability import logger
from tollway.settings import Settings
from tollway.table.routes import CompiledConfig, CompiledRoute

if TYPE_CHECKING:
    from tollway.auth.jwt import Identity, JwtVerifier
    from tollway.transport.exchange import Exchanger

MAX_CREDENTIAL_CHARS = 8192
KIND_NAMES = {"api_key": "an API key", "jwt": "a JWT"}


def looks_like_jwt(value: str) -> bool:
    return value.startswith("eyJ") and value.count(".") == 2


def presented(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(kind, value) of the one credential in `headers`, None if there is none."""
    api_key = headers.get("x-api-key", "").strip()
    bearer = ""
    authorization = headers.get("authorization", "").strip()
    if authorization:
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() == "bearer":
            bearer = rest.strip()
            if not bearer:
                raise invalid_token("empty bearer credential")
        elif not api_key:
            raise invalid_token("unsupported authorization scheme; use Bearer")
    if api_key and bearer and api_key != bearer:
        raise invalid_token("send one credential, not two")
    value = api_key or bearer
    if not value:
        return None
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise invalid_token("credential is too long")
    return ("jwt" if looks_like_jwt(value) else "api_key"), value


class NoIssuers:
    """The JWT verifier of a gateway that trusts no issuer: PyJWT and cryptography stay unloaded."""

    async def verify(self, token: str, deadline: float | None = None) -> Identity:
        raise invalid_token("token issuer is not trusted")


class GatewayAuthenticator:
    def __init__(self, keys: KeyVerifier, tokens: JwtVerifier | NoIssuers, plans: Collection[str]) -> None:
        self.keys = keys
        self.tokens = tokens
        self.plans = frozenset(plans)

    async def authenticate(
        self, request: Request, route: CompiledRoute, deadline: float | None = None
    ) -> Principal:
        """`deadline` (time.monotonic() seconds) bounds any lookup the credential needs."""
        credential = presented(request.headers)
        accepted = " or ".join(KIND_NAMES[k] for k in sorted(route.auth))
        if credential is None:
            raise missing(f"this route needs {accepted}")
        kind, value = credential
        if kind not in route.auth:
            raise missing(f"this route accepts {accepted}, not {KIND_NAMES[kind]}")
        if kind == "api_key":
            record = await self.keys.verify(value, deadline=deadline)
            principal = Principal(
                consumer_id=record.consumer,
                plan=record.plan,
                scopes=frozenset(record.scopes),
                credential="api_key",
                key_id=record.key_id,
            )
        else:
            identity = await self.tokens.verify(value, deadline)
            principal = Principal(
                consumer_id=identity.consumer, plan=identity.plan, scopes=identity.scopes, credential="jwt"
            )
        if principal.plan not in self.plans:
            raise Forbidden(f"the credential's plan {principal.plan[:64]!r} is not offered by this gateway")
        return principal


def build_authenticator(
    config: CompiledConfig,
    settings: Settings,
    exchanger: Exchanger,
    *,
    keys: KeyLookup | None = None,
    mac: KeyMac | None = None,
) -> GatewayAuthenticator:
    """`keys`: the keys table's lookup (None: API keys are refused); `mac`: the deployment's
    key MAC (None: only legacy keys can be accepted)."""
    environ = settings.environ or {}
    if keys is None:
        logger.warning("no keys table is configured: API keys will be refused")
    elif mac is None:
        logger.warning("no API key secret is configured: issued keys will be refused")
    verifier = KeyVerifier(keys, config.api_keys, mac=mac)
    tokens: JwtVerifier | NoIssuers = NoIssuers()
    if config.issuers:
        from tollway.auth.jwt import build_jwt_verifier

        tokens = build_jwt_verifier(config.issuers, environ, exchanger)
    return GatewayAuthenticator(verifier, tokens, config.plans)
