"""Edge policies of a route, compiled once: IP lists, CORS and request validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from tollway.config.models import Cors, Gateway, Route
from tollway.policy.cors import ALWAYS_EXPOSED, CorsPolicy
from tollway.policy.ip import IpPolicy
from tollway.policy.validation import RequestValidator, SchemaProblem

Problem = Callable[..., None]


def compile_policies(
    route: Route, gateway: Gateway, infra: Path, problem: Problem
) -> tuple[IpPolicy | None, CorsPolicy | None, RequestValidator | None]:
    return _ip(route, gateway), _cors(route, gateway), _validator(route, infra, problem)


def _ip(route: Route, gateway: Gateway) -> IpPolicy | None:
    # Denials add up; a route's own allow-list replaces the gateway's.
    deny = gateway.ip.deny + (route.ip.deny if route.ip else [])
    allow = route.ip.allow if route.ip and route.ip.allow else gateway.ip.allow
    return IpPolicy.build(allow, deny) if allow or deny else None


def cors_policy(cors: Cors) -> CorsPolicy:
    expose = tuple(dict.fromkeys([*ALWAYS_EXPOSED, *(h.lower() for h in cors.expose_headers)]))
    return CorsPolicy(
        origins=frozenset(cors.origins),
        methods=tuple(cors.methods),
        headers=tuple(h.lower() for h in cors.headers),
        expose=expose,
        credentials=cors.credentials,
        max_age_s=cors.max_age_s,
    )


def _cors(route: Route, gateway: Gateway) -> CorsPolicy | None:
    if route.cors is False:
        return None
    chosen = route.cors or gateway.cors
    return cors_policy(chosen) if chosen is not None else None


def _validator(route: Route, infra: Path, problem: Problem) -> RequestValidator | None:
    spec = route.validate_
    if spec is None or (spec.body is None and spec.query is None):
        return None
    schemas: dict[str, Any] = {}
    for part in ("body", "query"):
        schema = getattr(spec, part)
        if schema is None:
            continue
        try:
            schemas[part] = _resolve_ref(schema, infra)
            RequestValidator.build(schemas[part], None)
        except (OSError, ValueError, yaml.YAMLError, SchemaProblem) as exc:
            problem(f"validate.{part}: {exc}", "validate", part)
    if len(schemas) != sum(getattr(spec, p) is not None for p in ("body", "query")):
        return None
    return RequestValidator.build(schemas.get("body"), schemas.get("query"))


def _resolve_ref(schema: dict[str, Any], infra: Path) -> dict[str, Any]:
    """`{"$ref": "schemas/x.json"}` is read from the infra folder; other refs stay inside."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or ref.startswith("#") or len(schema) != 1:
        return schema
    path = (infra / ref).resolve()
    if infra.resolve() not in path.parents:
        raise ValueError(f"$ref {ref!r} must name a file inside the infra folder")
    text = path.read_text()
    loaded = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"$ref {ref!r} is not a JSON Schema object")
    return loaded
