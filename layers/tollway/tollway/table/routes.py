"""The compiled route table: every route of one stage, as the request path reads it.

`tollway.config` builds it (`compile_infra`: YAML, pydantic models, every cross-file rule)
and `sam build` writes it with the function (config/artifact.py); either way the request
path gets these types, immutable, with nothing left to parse or validate. No pydantic here:
the plans, issuers and options are this package's plain dataclasses (plans.py, auth.py and
below), and a route's edge policies are compiled objects (tollway.policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tollway.table.auth import ApiKeys, JwtIssuer
from tollway.table.plans import Plan
from tollway.table.targets import ServiceTarget
from tollway.table.templates import Template

if TYPE_CHECKING:
    from tollway.policy.cors import CorsPolicy
    from tollway.policy.ip import IpPolicy
    from tollway.policy.metering import CostSpec
    from tollway.policy.validation import RequestValidator
    from tollway.table.grpc import GrpcMethod


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int = 2  # tries in all, the first included; idempotent methods only
    backoff_ms: int = 50


@dataclass(frozen=True, slots=True)
class Breaker:
    failures: int = 5
    cooldown_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Cache:
    ttl_s: int
    shared: bool = False
    max_entries: int = 1000
    # Caller fields the backend answers differently on: forwarded, and part of the key.
    vary: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Defaults:
    timeout_ms: int = 3000
    max_body_bytes: int = 1_048_576
    max_response_bytes: int = 5 * 1024 * 1024
    quota_failure: Literal["open", "closed"] = "closed"


@dataclass(frozen=True, slots=True)
class CompiledBackend:
    name: str
    service: str
    target: ServiceTarget | None  # None: the service has no URL in this stage
    path: Template
    query: tuple[tuple[str, Template], ...]
    method: str | None  # None: the caller's method
    headers: tuple[tuple[str, Template], ...]
    body: Any  # a JSON template, or None to forward the caller's body
    timeout_s: float
    required: bool
    pick: tuple[str, ...] | None
    rename: Mapping[str, str]
    depends_on: frozenset[str]
    retry: Retry
    breaker: Breaker
    cache: Cache | None
    pinned: frozenset[str] = frozenset()  # query names the config sets, case-folded: the caller's are dropped
    grpc: GrpcMethod | None = None  # a gRPC backend's method (SPEC §7); None: an HTTP backend
    idempotent: bool = False  # a gRPC call may be retried


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    id: str
    team: str
    path: str
    methods: frozenset[str]
    auth: frozenset[str]
    public: bool
    scopes: frozenset[str]
    cost: int
    timeout_s: float
    compose: str
    backends: tuple[CompiledBackend, ...]  # in an order where dependencies come first
    quota_failure: str
    max_body_bytes: int
    max_response_bytes: int
    forward_scopes: bool
    cache: Cache | None
    ip: IpPolicy | None = None
    cors: CorsPolicy | None = None
    validator: RequestValidator | None = None
    greedy: str | None = None  # the `{name+}` parameter: its value may hold `/`
    metering: CostSpec | None = None  # cost read from the answer (tollway.policy.metering)


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    stage: str
    routes: tuple[CompiledRoute, ...]
    plans: Mapping[str, Plan]
    issuers: tuple[JwtIssuer, ...]
    defaults: Defaults
    api_keys: ApiKeys
    services: Mapping[str, str]  # each service's URLs (comma-separated) or discovery reference
