"""Who may call, as the route table holds it (gateway.yaml's `auth`, validated by
tollway.config.models)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    issuer: str
    audience: str | tuple[str, ...]
    jwks_url: str | None = None
    hs256_secret_env: str | None = None
    algorithms: tuple[str, ...] | None = None  # None: the default allow-list of its key source
    consumer_claim: str = "sub"
    # The consumer id is `<consumer_prefix>|<claim>`; None: the issuer (tollway.config.models).
    consumer_prefix: str | None = None
    scopes_claim: str = "scope"
    plan_claim: str | None = None
    default_plan: str = "free"
    leeway_s: int = 30
    jwks_refresh_s: int = 60
    jwks_max_age_s: int = 3600


@dataclass(frozen=True, slots=True)
class ApiKeys:
    cache_ttl_s: int = 30
    negative_cache_ttl_s: int = 30
    cache_size: int = 10_000
    legacy_keys: bool = True  # keys of the format issued before the MAC are looked up (docs/auth.md)
