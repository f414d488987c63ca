"""Pydantic models of the three infra files: gateway.yaml, plans.yaml, routes/<team>.yaml.

These check the shape of each file on its own. Rules that span files (unknown service,
unknown plan, duplicate ids, overlapping routes, template references) live in
`tollway.config.compile`, which turns validated models into an immutable route table.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from tollway.config.protos import METHOD_NAME
from tollway.table.targets import parse_target

# API Gateway's HTTP API integration limit is the ceiling for any deadline.
MAX_TIMEOUT_MS = 30_000
NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"
ROUTE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# `{name}` matches one segment; `{name+}` (last segment only, as in API Gateway) matches
# the rest of the path, slashes included: the only way a value may hold a `/`.
PARAM_SEGMENT = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}$")
ROUTE_PATH = r"^(/([^{}/]*|\{[A-Za-z_][A-Za-z0-9_]*\}))*(/\{[A-Za-z_][A-Za-z0-9_]*\+\})?$"

# RFC 6749 §3.3 scope-token: printable ASCII but space, '"' and '\'. A scope outside it can
# never be held: a JWT's space-separated claim splits it, and `tollway keys create` refuses it.
SCOPE_TOKEN = r"^[\x21\x23-\x5b\x5d-\x7e]+$"

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TimeoutMs = Annotated[int, Field(gt=0, le=MAX_TIMEOUT_MS)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- gateway.yaml -------------------------------------------------------------------


class Stage(Model):
    # A URL, a list of URLs, or a discovery reference: ssm:/path/name, cloudmap:namespace/service.
    services: dict[Annotated[str, Field(pattern=NAME)], str | list[str]] = {}

    @field_validator("services")
    @classmethod
    def _targets(cls, services: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for name, spec in services.items():
            try:
                parse_target(spec)
            except ValueError as exc:
                raise ValueError(f"service {name}: {exc}") from None
        return services


class Defaults(Model):
    timeout_ms: TimeoutMs = 3000
    max_body_bytes: Annotated[int, Field(gt=0, le=6 * 1024 * 1024)] = 1_048_576
    # Lambda answers at most 6 MB (less after base64): a bigger backend body is a clean 502.
    max_response_bytes: Annotated[int, Field(gt=0, le=6 * 1024 * 1024)] = 5 * 1024 * 1024
    quota_failure: Literal["open", "closed"] = "closed"


class JwtIssuer(Model):
    issuer: str
    audience: str | list[str]
    jwks_url: str | None = None
    hs256_secret_env: str | None = None
    algorithms: (
        list[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA", "PS256", "HS256"]] | None
    ) = None
    consumer_claim: str = "sub"
    # The consumer id is `<consumer_prefix>|<claim>`, the prefix defaulting to the issuer,
    # so a token can never spend another issuer's or an API key's consumer (API-key
    # consumers hold no `|`). Issuers given one prefix share consumers on purpose;
    # `consumer_prefix: ""` makes the claim itself the id, shared with API keys on purpose.
    consumer_prefix: Annotated[str, Field(max_length=128, pattern=r"^[^|\x00-\x1f\x7f]*$")] | None = None
    scopes_claim: str = "scope"
    plan_claim: str | None = None
    default_plan: str = "free"
    leeway_s: Annotated[int, Field(ge=0, le=300)] = 30
    # An unknown kid (or a failed fetch) refetches the JWKS at most once per jwks_refresh_s;
    # a JWKS older than jwks_max_age_s is refetched, so removed keys stop verifying.
    jwks_refresh_s: Annotated[int, Field(ge=1)] = 60
    jwks_max_age_s: Annotated[int, Field(ge=1)] = 3600

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtIssuer:
        if self.consumer_prefix is None and ("|" in self.issuer or len(self.issuer) > 128):
            raise ValueError("this issuer cannot prefix consumer ids: give consumer_prefix")
        if (self.jwks_url is None) == (self.hs256_secret_env is None):
            raise ValueError("give exactly one of jwks_url or hs256_secret_env")
        if self.algorithms is not None:
            if not self.algorithms:
                raise ValueError("algorithms must not be empty")
            if self.jwks_url is not None and "HS256" in self.algorithms:
                raise ValueError("HS256 needs hs256_secret_env, not a JWKS (its keys are public)")
            if self.hs256_secret_env is not None and set(self.algorithms) != {"HS256"}:
                raise ValueError("an hs256_secret_env issuer verifies HS256 only")
        if self.jwks_url is not None:
            m = re.match(r"^(https?)://([^/:]+|\[[^\]]+\])(:\d+)?(/.*)?$", self.jwks_url)
            if not m:
                raise ValueError(f"jwks_url {self.jwks_url!r} is not a URL")
            loopback = m.group(2) in ("127.0.0.1", "localhost", "[::1]")
            if m.group(1) != "https" and not loopback:
                raise ValueError("jwks_url must be https (plain http only on loopback)")
        return self


class ApiKeys(Model):
    cache_ttl_s: Annotated[int, Field(ge=0, le=60)] = 30
    negative_cache_ttl_s: Annotated[int, Field(ge=0, le=60)] = 30
    cache_size: Annotated[int, Field(gt=0)] = 10_000
    # Look up keys of the checksummed format issued before keys carried a MAC (docs/auth.md).
    legacy_keys: bool = True


class Auth(Model):
    jwt: list[JwtIssuer] = []
    api_keys: ApiKeys = ApiKeys()


class Cors(Model):
    origins: Annotated[list[str], Field(min_length=1)]
    methods: list[Method] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    headers: list[str] = ["authorization", "content-type", "x-api-key", "x-request-id"]
    expose_headers: list[str] = []
    credentials: bool = False
    max_age_s: Annotated[int, Field(ge=0, le=86_400)] = 600

    @field_validator("origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(f"origin {origin!r} must be '*' or scheme://host[:port]")
        return origins


class IpRules(Model):
    allow: list[str] = []
    deny: list[str] = []

    @field_validator("allow", "deny")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        import ipaddress

        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR block") from None
        return cidrs


class Validate(Model):
    # A JSON Schema, or {"$ref": "schemas/<file>.json|yaml"} relative to the infra folder.
    body: dict[str, Any] | None = None
    query: dict[str, Any] | None = None


class Gateway(Model):
    stages: dict[Annotated[str, Field(pattern=NAME)], Stage]
    defaults: Defaults = Defaults()
    auth: Auth = Auth()
    cors: Cors | None = None
    ip: IpRules = IpRules()


# ---- plans.yaml ---------------------------------------------------------------------


class Rate(Model):
    limit: Annotated[int, Field(gt=0)]
    per: Literal["second", "minute"]
    burst: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _burst(self) -> Rate:
        if self.burst is not None and self.burst < self.limit:
            raise ValueError(f"burst ({self.burst}) must be at least limit ({self.limit})")
        return self


class Quota(Model):
    limit: Annotated[int, Field(gt=0)]
    per: Literal["day", "month"]


class Price(Model):
    per_1000_units: Annotated[float, Field(ge=0)] = 0
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


def _no_spaces(name: str) -> str:
    if any(c.isspace() for c in name):
        raise ValueError(f"{name!r}: a Stripe name holds no spaces")
    return name


# A Stripe meter's event name and payload keys (Stripe: at most 100 characters).
StripeName = Annotated[
    str,
    Field(min_length=1, max_length=100, json_schema_extra={"pattern": r"^\S+$"}),
    AfterValidator(_no_spaces),
]


class StripeMeter(Model):
    """Push this plan's units to Stripe Billing as meter events (docs/billing.md)."""

    meter: StripeName = Field(description="The event_name of the Stripe meter")
    customer_key: StripeName = Field("stripe_customer_id", description="The meter's customer payload key")
    value_key: StripeName = Field("value", description="The meter's value payload key")


class Plan(Model):
    rate: Rate | None = None
    quota: Quota | None = None
    price: Price = Price()
    stripe: StripeMeter | None = None
    # Counter items a consumer's usage is spread over, for plans above ~1,000 writes/s;
    # each shard holds an equal part of the quota and the burst (docs/quota.md).
    shards: Annotated[int, Field(ge=1, le=64)] = 1

    @model_validator(mode="after")
    def _shards(self) -> Plan:
        limits = [self.rate.burst or self.rate.limit] if self.rate is not None else []
        limits += [self.quota.limit] if self.quota is not None else []
        smallest = min(limits, default=self.shards)
        if self.shards > smallest:
            raise ValueError(f"shards ({self.shards}) must not exceed the smallest limit ({smallest})")
        return self


class Plans(Model):
    plans: dict[Annotated[str, Field(pattern=NAME)], Plan]


# ---- routes/<team>.yaml -------------------------------------------------------------


class Breaker(Model):
    failures: Annotated[int, Field(ge=1)] = 5
    cooldown_s: Annotated[float, Field(gt=0)] = 10.0


class Retry(Model):
    # Tries in all, the first included; only idempotent methods are tried more than once.
    attempts: Annotated[int, Field(ge=1, le=5)] = 2
    backoff_ms: Annotated[int, Field(ge=0, le=10_000)] = 50


class Cache(Model):
    ttl_s: Annotated[int, Field(gt=0, le=86_400)]
    shared: bool = False
    max_entries: Annotated[int, Field(gt=0)] = 1000
    # Caller fields the backend answers differently on: forwarded, and part of the key
    # (Accept-Encoding always is). No other caller field reaches a cached route's backend.
    vary: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")]] = []


class Backend(Model):
    # An HTTP backend has a `path`; a gRPC backend (SPEC §7) names its method instead.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["grpc"]},
            "then": {"not": {"required": ["path"]}},
            "else": {"required": ["path"]},
        }
    )

    name: Annotated[str, Field(pattern=NAME)]
    service: Annotated[str, Field(pattern=NAME)]
    path: Annotated[str, Field(pattern=r"^/")] | None = None
    # `<package>.<Service>/<Method>` of a proto under infra/protos (tollway/config/protos.py).
    grpc: Annotated[str, Field(pattern=METHOD_NAME)] | None = None
    # gRPC has no method verb: `retry` tries a gRPC call again only when this says it may.
    idempotent: bool = False
    query: dict[str, str] = {}
    method: Method | None = None
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")], str] = {}
    body: Any = None
    timeout_ms: TimeoutMs | None = None
    required: bool = True
    pick: list[str] | None = None
    rename: dict[str, str] = {}
    retry: Retry = Retry()
    breaker: Breaker = Breaker()
    cache: Cache | None = None


FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$"


def _field_path(path: str) -> str:
    if not re.match(FIELD_PATH, path):
        raise ValueError(f"{path!r} is not a field path (JSON member names joined by dots)")
    return path


FieldPath = Annotated[str, AfterValidator(_field_path)]
Weight = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=9)]
# "usage.input_tokens + 3 * usage.output_tokens": a sum of fields, each with an optional weight.
_SUM_TERM = re.compile(r"^(?:(\d+(?:\.\d+)?)\s*\*\s*)?([A-Za-z_][A-Za-z0-9_.-]*)$")


class MeterField(Model):
    field: FieldPath
    weight: Weight = Decimal(1)


class MeterEstimate(Model):
    """Units reserved at admission from the request's JSON body: field x weight + plus."""

    field: FieldPath
    weight: Weight = Decimal(1)
    plus: Annotated[int, Field(ge=0)] = 0


class Metering(Model):
    """The route's cost read from its answer (docs/metering.md)."""

    units: Annotated[list[MeterField], Field(min_length=1)]
    # Charged when a successful answer carries none of the fields, or a malformed one, and the
    # least an event stream cut before its end pays; unset: the request's reservation.
    missing: Annotated[int, Field(ge=0)] | None = None
    reserve: Annotated[int, Field(ge=0)] | None = None
    estimate: MeterEstimate | None = None

    @field_validator("units", mode="before")
    @classmethod
    def _sum(cls, units: Any) -> Any:
        if isinstance(units, str):
            units = [_sum_term(term) for term in units.split("+")]
        if isinstance(units, list):
            units = [{"field": u} if isinstance(u, str) else u for u in units]
        return units

    @model_validator(mode="after")
    def _distinct(self) -> Metering:
        names = [u.field for u in self.units]
        if len(set(names)) != len(names):
            raise ValueError("a field is listed twice")
        return self


def _sum_term(term: str) -> dict[str, Any]:
    m = _SUM_TERM.match(term.strip())
    if not m or not re.match(FIELD_PATH, m.group(2)):
        raise ValueError(f"{term.strip()!r} is not a field path or WEIGHT * field.path")
    return {"field": m.group(2), "weight": m.group(1) or "1"}


def _scope_token(scope: str) -> str:
    if not re.fullmatch(SCOPE_TOKEN, scope):
        raise ValueError(
            f"scope {scope!r} is not an OAuth scope token (RFC 6749 §3.3: printable ASCII "
            "without spaces, '\"' or '\\'): no key or token can hold it"
        )
    return scope


Scope = Annotated[str, AfterValidator(_scope_token), Field(json_schema_extra={"pattern": SCOPE_TOKEN})]


class Route(Model):
    id: Annotated[str, Field(pattern=ROUTE_ID)]
    path: Annotated[str, Field(json_schema_extra={"pattern": ROUTE_PATH})]
    methods: Annotated[list[Method], Field(min_length=1)]
    auth: list[Literal["api_key", "jwt"]] = []
    public: bool = False
    scopes: list[Scope] = []
    cost: Annotated[int, Field(ge=0)] = 1
    # Cost read from the answer (tokens): reserved at admission, settled after (docs/metering.md).
    metering: Metering | None = None
    timeout_ms: TimeoutMs | None = None
    compose: Literal["proxy", "merge", "group"] = "proxy"
    backends: Annotated[list[Backend], Field(min_length=1)]
    quota_failure: Literal["open", "closed"] | None = None
    forward_scopes: bool = False
    cache: Cache | None = None
    validate_: Validate | None = Field(None, alias="validate")
    # Overrides gateway.yaml's `cors` for this route; `false` turns CORS off here.
    cors: Cors | Literal[False] | None = None
    ip: IpRules | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with /")
        names: list[str] = []
        segments = path.split("/")[1:]
        for i, segment in enumerate(segments):
            if "{" in segment or "}" in segment:
                m = PARAM_SEGMENT.match(segment)
                if not m:
                    raise ValueError(f"path segment {segment!r} must be a literal or a whole {{param}}")
                if m.group(2) and i != len(segments) - 1:
                    raise ValueError(f"greedy parameter {segment} must be the path's last segment")
                if m.group(1) in names:
                    raise ValueError(f"path parameter {{{m.group(1)}}} appears twice")
                names.append(m.group(1))
        return path

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("methods are listed twice")
        return methods

    @model_validator(mode="after")
    def _auth(self) -> Route:
        if self.public and self.auth:
            raise ValueError("a public route takes no auth")
        if not self.public and not self.auth:
            raise ValueError("give auth: [api_key, jwt] or public: true")
        if self.public and self.scopes:
            raise ValueError("a public route cannot require scopes")
        if self.public and self.metering is not None:
            raise ValueError("a public route spends no quota: metering needs auth")
        return self


class RouteFile(Model):
    team: Annotated[str, Field(pattern=NAME)]
    routes: list[Route]
