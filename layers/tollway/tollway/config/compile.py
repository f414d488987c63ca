"""Cross-file rules, then the immutable route table the request path reads (tollway.table).

`compile_infra` is the only entry: it loads, validates and compiles an infra folder for
one stage, and raises `ConfigError` listing every problem. Nothing at request time
re-reads or re-validates config. The table holds no pydantic model: each validated model
becomes the table's own type of it (`tabled`), so a table compiled here and one loaded
from the build's file (config/artifact.py) are made of the same types.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tollway.config.errors import ConfigError, ConfigProblem
from tollway.table.auth import ApiKeys, JwtIssuer
from tollway.table.plans import Plan, Price, Quota, Rate, StripeMeter
from tollway.table.routes import (
    Breaker,
    Cache,
    CompiledBackend,
    CompiledConfig,
    CompiledRoute,
    Defaults,
    Retry,
)
from tollway.table.targets import ServiceTarget, is_grpc, parse_target

if TYPE_CHECKING:
    # Only the compiler needs these: a Lambda loading the built table (config/artifact.py)
    # imports neither the YAML loader nor the models it does not hold, nor the policies.
    from tollway.config import models
    from tollway.config.load import Loaded, LoadedRoute
    from tollway.config.models import Backend, Metering, Route
    from tollway.config.protos import ProtoSet
    from tollway.policy.metering import CostSpec
    from tollway.table.grpc import GrpcMethod

# The route table's type of each validated model (by the model's class name).
TABLE_TYPES: dict[str, type] = {
    kind.__name__: kind
    for kind in (Plan, Rate, Quota, Price, StripeMeter, JwtIssuer, ApiKeys, Defaults, Retry, Breaker, Cache)
}


def tabled(model: Any) -> Any:
    """A validated model as the route table's type of it, nested models and lists included."""
    kind = TABLE_TYPES[type(model).__name__]
    return kind(**{f.name: _tabled_value(getattr(model, f.name)) for f in dataclasses.fields(kind)})


def _tabled_value(value: Any) -> Any:
    if hasattr(type(value), "model_fields"):  # a pydantic model (not imported here: see above)
        return tabled(value)
    if isinstance(value, list):
        return tuple(_tabled_value(v) for v in value)
    return value


def greedy_param(path: str) -> str | None:
    last = path.rsplit("/", 1)[-1]
    return last[1:-2] if last.startswith("{") and last.endswith("+}") else None


def shape(path: str) -> str:
    """A route path with parameter names erased and literals read as the router reads them
    (decoded): two routes of one shape collide."""
    from urllib.parse import unquote

    return "/".join(
        ("{+}" if s.endswith("+}") else "{}") if s.startswith("{") else unquote(s) for s in path.split("/")
    )


def service_overrides(
    known_services: Iterable[str], environ: Mapping[str, str]
) -> tuple[dict[str, ServiceTarget], list[tuple[str, str, str]]]:
    """`TOLLWAY_SERVICE_<NAME>` targets by service, and (variable, service, problem) for bad ones."""
    overrides: dict[str, ServiceTarget] = {}
    bad: list[tuple[str, str, str]] = []
    for key, value in environ.items():
        if key.startswith("TOLLWAY_SERVICE_") and value:
            name = key.removeprefix("TOLLWAY_SERVICE_")
            for known in known_services:
                if known.upper() == name.upper():
                    try:
                        overrides[known] = parse_target(value)
                    except ValueError as exc:
                        bad.append((key, known, str(exc)))
    return overrides, bad


def compile_infra(
    infra: Path,
    stage: str | None = None,
    environ: Mapping[str, str] | None = None,
    display_root: Path | None = None,
) -> CompiledConfig:
    from tollway.config.load import load_infra

    return compile_loaded(load_infra(infra, display_root), stage, environ)


def compile_loaded(
    loaded: Loaded, stage: str | None = None, environ: Mapping[str, str] | None = None
) -> CompiledConfig:
    """Compile files already read, for one stage; `routes check` reads once for every stage."""
    problems = list(loaded.problems)
    config = None
    if loaded.gateway is not None and loaded.plans is not None:
        config = _compile(loaded, stage, environ or {}, problems)
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _compile(
    loaded: Loaded, stage: str | None, environ: Mapping[str, str], problems: list[ConfigProblem]
) -> CompiledConfig | None:
    from tollway.config.policies import compile_policies

    gateway, plans = loaded.gateway, loaded.plans
    assert gateway is not None and plans is not None and loaded.gateway_doc and loaded.plans_doc
    gdoc = loaded.gateway_doc

    if stage is None:
        stage = next(iter(gateway.stages), "dev")
    if stage not in gateway.stages:
        problems.append(
            ConfigProblem(gdoc.file, gdoc.line(("stages",)), "gateway", f"unknown stage {stage!r}")
        )
        return None
    # The models checked every spec's syntax: parsing them again cannot fail.
    services = {name: parse_target(spec) for name, spec in gateway.stages[stage].services.items()}
    known_services = {name for s in gateway.stages.values() for name in s.services}
    overrides, bad = service_overrides(known_services, environ)
    services.update(overrides)
    for key, known, message in bad:
        where = gdoc.line(("stages", stage, "services", known))
        problems.append(ConfigProblem(gdoc.file, where, "gateway", f"{key}: {message}"))

    for i, issuer in enumerate(gateway.auth.jwt):
        if issuer.default_plan not in plans.plans:
            problems.append(
                ConfigProblem(
                    gdoc.file,
                    gdoc.line(("auth", "jwt", i, "default_plan")),
                    "gateway",
                    f"auth.jwt[{i}].default_plan: unknown plan {issuer.default_plan!r}",
                )
            )

    seen_ids: dict[str, LoadedRoute] = {}
    claimed: dict[tuple[str, str], LoadedRoute] = {}
    compiled: list[CompiledRoute] = []
    for lr in loaded.routes:
        route = lr.route
        subject = f"route {route.id}"

        def problem(message: str, *loc: str | int, lr: LoadedRoute = lr, subject: str = subject) -> None:
            problems.append(ConfigProblem(lr.file, lr.line(*loc), subject, message))

        if route.id in seen_ids:
            first = seen_ids[route.id]
            problem(f"duplicate route id (first defined at {first.file}:{first.line()})", "id")
        else:
            seen_ids[route.id] = lr
        # A GET route answers HEAD too (below): its HEAD is claimed like a declared method,
        # or a HEAD-only route of the same shape would silently take it, or lose it.
        implied = ["HEAD"] if "GET" in route.methods and "HEAD" not in route.methods else []
        clashed: set[str] = set()
        for method in [*route.methods, *implied]:
            key = (method, shape(route.path))
            if key in claimed and claimed[key].route.id != route.id:
                other = claimed[key]
                if implied and method == "HEAD" and other.route.id in clashed:
                    continue  # its GET already clashed with that route: one problem is enough
                clashed.add(other.route.id)
                problem(
                    f"{method} {route.path} is already claimed by route {other.route.id} "
                    f"({other.file}:{other.line()})",
                    "path",
                )
            else:
                claimed.setdefault(key, lr)
        before = len(problems)
        backends = _compile_backends(lr, services, known_services, gateway.defaults, problem, loaded.protos)
        ip, cors, validator = compile_policies(route, gateway, loaded.infra, problem)
        if route.metering is not None and backends and route.compose == "proxy" and backends[0].grpc:
            from tollway.config.protos import answer_field_problem

            for i, unit in enumerate(route.metering.units):
                wrong = answer_field_problem(backends[0].grpc, unit.field)
                if wrong:
                    problem(f"metering.units[{i}]: {wrong}", "metering", "units")
        if len(problems) == before and backends is not None:
            compiled.append(
                CompiledRoute(
                    id=route.id,
                    team=lr.team,
                    path=route.path,
                    methods=frozenset(route.methods) | ({"HEAD"} if "GET" in route.methods else set()),
                    auth=frozenset(route.auth),
                    public=route.public,
                    scopes=frozenset(route.scopes),
                    cost=route.cost,
                    timeout_s=(route.timeout_ms or gateway.defaults.timeout_ms) / 1000,
                    compose=route.compose,
                    backends=backends,
                    quota_failure=route.quota_failure or gateway.defaults.quota_failure,
                    max_body_bytes=gateway.defaults.max_body_bytes,
                    max_response_bytes=gateway.defaults.max_response_bytes,
                    forward_scopes=route.forward_scopes,
                    cache=tabled(route.cache) if route.cache is not None else None,
                    ip=ip,
                    cors=cors,
                    validator=validator,
                    greedy=greedy_param(route.path),
                    metering=cost_spec(route.metering) if route.metering is not None else None,
                )
            )
    return CompiledConfig(
        stage=stage,
        routes=tuple(compiled),
        plans=MappingProxyType({name: tabled(plan) for name, plan in plans.plans.items()}),
        issuers=tuple(tabled(issuer) for issuer in gateway.auth.jwt),
        defaults=tabled(gateway.defaults),
        api_keys=tabled(gateway.auth.api_keys),
        services=MappingProxyType({name: str(target) for name, target in services.items()}),
    )


def cost_spec(metering: Metering) -> CostSpec:
    from tollway.policy.metering import CostSpec, Estimate, Term

    estimate = metering.estimate
    return CostSpec(
        terms=tuple(Term(tuple(u.field.split(".")), u.weight) for u in metering.units),
        missing=metering.missing,
        reserve=metering.reserve,
        estimate=(
            Estimate(tuple(estimate.field.split(".")), estimate.weight, estimate.plus)
            if estimate is not None
            else None
        ),
    )


def _check_vary(cache: models.Cache | None, where: str, problem, at: tuple) -> None:
    from tollway.core.headers import to_backend

    for name in cache.vary if cache is not None else ():
        if not to_backend(name.lower()):
            problem(f"{where}.vary: {name} never reaches a backend, so no answer can vary on it", *at, "vary")


def _compile_backends(
    lr, services, known_services, defaults, problem, protos=None
) -> tuple[CompiledBackend, ...] | None:
    from tollway.table.templates import Template, json_template_refs, parse_json_template

    route: Route = lr.route
    params = {s[1:-1].removesuffix("+") for s in route.path.split("/") if s.startswith("{")}
    names = [b.name for b in route.backends]
    route_timeout_ms = route.timeout_ms or defaults.timeout_ms

    if route.compose == "proxy" and len(route.backends) != 1:
        problem(f"compose: proxy needs exactly one backend, found {len(route.backends)}", "compose")
    unsafe = sorted(set(route.methods) - {"GET", "HEAD"})
    if route.cache is not None and unsafe:
        problem(f"cache: only GET routes can be cached, this one also allows {', '.join(unsafe)}", "cache")
    _check_vary(route.cache, "cache", problem, ("cache",))
    deps: dict[str, set[str]] = {}
    out: dict[str, CompiledBackend] = {}
    for i, b in enumerate(route.backends):
        at = ("backends", i)
        if names.count(b.name) > 1 and names.index(b.name) != i:
            problem(f"backends[{i}].name: duplicate backend name {b.name!r}", *at, "name")
        if b.service not in known_services:
            problem(f"backends[{i}].service: unknown service {b.service!r}", *at, "service")
        if b.timeout_ms is not None and b.timeout_ms > route_timeout_ms:
            problem(
                f"backends[{i}].timeout_ms: {b.timeout_ms} exceeds the route's deadline "
                f"of {route_timeout_ms} ms",
                *at,
                "timeout_ms",
            )
        if route.compose == "proxy" and (b.pick is not None or b.rename):
            problem(f"backends[{i}]: pick and rename need compose: merge or group", *at)
        if b.cache is not None and unsafe:
            problem(f"backends[{i}].cache: only GET routes can cache, this one also allows {unsafe[0]}", *at)
        _check_vary(b.cache, f"backends[{i}].cache", problem, (*at, "cache"))
        method = None
        if b.grpc is not None:
            method = _grpc_backend(b, i, services.get(b.service), protos, problem)
        else:
            _http_backend(b, i, services.get(b.service), problem)
        if (
            b.grpc is None
            and b.body is not None
            and ({b.method} if b.method else set(route.methods)) & {"GET", "HEAD"}
        ):
            problem(f"backends[{i}].body: a body needs method POST, PUT, PATCH or DELETE", *at, "body")
        path = Template.parse(b.path or "")
        query = tuple((k, Template.parse(v)) for k, v in b.query.items())
        headers = tuple((k.lower(), Template.parse(v)) for k, v in b.headers.items())
        body = parse_json_template(b.body) if b.body is not None else None
        refs = [
            *((("path",), r) for r in path.refs),
            *((("query", k), r) for k, t in query for r in t.refs),
            *((("headers", k), r) for k, t in b.headers.items() for r in Template.parse(t).refs),
            *((("body",), r) for r in json_template_refs(body)),
        ]
        deps[b.name] = set()
        for where, ref in refs:
            field = ".".join(str(w) for w in where)
            if ref.backend is None:
                if ref.path[0] not in params:
                    problem(
                        f"backends[{i}].{field}: {{{ref.text}}} is not a parameter of path {route.path}",
                        *at,
                        *where,
                    )
            elif ref.backend not in names:
                problem(
                    f"backends[{i}].{field}: {{{ref.text}}} refers to unknown backend {ref.backend!r}",
                    *at,
                    *where,
                )
            elif ref.backend == b.name:
                problem(f"backends[{i}].{field}: {{{ref.text}}} refers to its own backend", *at, *where)
            else:
                deps[b.name].add(ref.backend)
        out[b.name] = CompiledBackend(
            name=b.name,
            service=b.service,
            target=services.get(b.service),
            path=path,
            query=query,
            pinned=frozenset(k.casefold() for k in b.query),
            method=b.method,
            headers=headers,
            body=body,
            timeout_s=(b.timeout_ms or route_timeout_ms) / 1000,
            required=b.required,
            pick=tuple(b.pick) if b.pick is not None else None,
            rename=MappingProxyType(dict(b.rename)),
            depends_on=frozenset(deps[b.name]),
            retry=tabled(b.retry),
            breaker=tabled(b.breaker),
            cache=tabled(b.cache) if b.cache is not None else None,
            grpc=method,
            idempotent=b.idempotent,
        )
    order = _topological(deps)
    if order is None:
        cycle = sorted(n for n in deps if deps[n])
        problem(f"backends form a dependency cycle: {' -> '.join(cycle)}", "backends")
        return None
    return tuple(out[name] for name in order if name in out)


def _http_backend(b: Backend, i: int, target: ServiceTarget | None, problem) -> None:
    at = ("backends", i)
    if b.path is None:
        problem(f"missing key 'backends[{i}].path'", *at)
    if b.idempotent:
        message = f"backends[{i}].idempotent: only a gRPC backend takes it (an HTTP method says it)"
        problem(message, *at, "idempotent")
    if target is not None and target.urls and is_grpc(target.urls[0]):
        problem(
            f"backends[{i}]: service {b.service} is a gRPC service ({target.urls[0]}): "
            "name the method with grpc: <package>.<Service>/<Method>",
            *at,
            "service",
        )


def _grpc_backend(
    b: Backend, i: int, target: ServiceTarget | None, protos: ProtoSet | None, problem
) -> GrpcMethod | None:
    """SPEC §7's checks of a gRPC backend; its method, or None when it cannot be called."""
    from tollway.config.protos import body_problems, resolve

    at = ("backends", i)
    if b.path is not None:
        problem(f"backends[{i}].path: a gRPC backend has no path (its method is {b.grpc})", *at, "path")
    for key in ("query", "method"):
        if getattr(b, key):
            problem(f"backends[{i}].{key}: a gRPC backend takes no {key}", *at, key)
    if target is not None and target.urls and not is_grpc(target.urls[0]):
        problem(
            f"backends[{i}].grpc: service {b.service} is not a gRPC service: its URL "
            f"{target.urls[0]} must be grpc://host:port or grpcs://host:port",
            *at,
            "grpc",
        )
    if protos is not None and protos.descriptors is None:
        return None  # the protos did not compile: that is the problem to fix first
    assert b.grpc is not None
    method = resolve(protos, b.grpc)
    if isinstance(method, str):
        problem(f"backends[{i}].grpc: {method}", *at, "grpc")
        return None
    if b.body is not None:
        for where, message in body_problems(method, b.body):
            dotted = "".join(f"[{w}]" if isinstance(w, int) else f".{w}" for w in where)
            problem(f"backends[{i}].body{dotted}: {message}", *at, "body", *where)
    return method


def _topological(deps: dict[str, set[str]]) -> list[str] | None:
    order: list[str] = []
    done: set[str] = set()
    pending = dict(deps)
    while pending:
        ready = [n for n, d in pending.items() if (d & deps.keys()) <= done]
        if not ready:
            return None
        for n in ready:
            order.append(n)
            done.add(n)
            del pending[n]
    return order
