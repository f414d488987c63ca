"""A route table as plain data, and what changed between two of them (`tollway routes diff`).

The deployed table is the one the pre-traffic hook function carries: it is built by the
same `sam build` as the router's, from the same infra folder and code, and asked for its
summary (`{"tollway": "routes"}`), so the comparison is with what is deployed, not with
what was last checked in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollway.table.routes import CompiledConfig, CompiledRoute
from tollway.table.templates import Template

Summary = dict[str, dict[str, Any]]


def route_summary(route: CompiledRoute) -> dict[str, Any]:
    """What a caller or a backend would notice if it changed."""
    return {
        "methods": sorted(route.methods - {"HEAD"} if "GET" in route.methods else route.methods),
        "path": route.path,
        "auth": "public" if route.public else sorted(route.auth),
        "scopes": sorted(route.scopes),
        "cost": route.cost if route.metering is None else "metered",
        "timeout_ms": round(route.timeout_s * 1000),
        "compose": route.compose,
        "quota_failure": route.quota_failure,
        "backends": [
            {
                "name": b.name,
                "service": b.service,
                "method": b.method,
                "path": _text(b.path),
                "required": b.required,
                "timeout_ms": round(b.timeout_s * 1000),
            }
            for b in route.backends
        ],
    }


def _text(template: Template) -> str:
    return "".join(p if isinstance(p, str) else "{" + p.text + "}" for p in template.parts)


def summary(config: CompiledConfig) -> Summary:
    return {route.id: route_summary(route) for route in config.routes}


@dataclass
class RouteDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # route id -> field -> (deployed, local)
    changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff(deployed: Summary, local: Summary) -> RouteDiff:
    out = RouteDiff(
        added=sorted(local.keys() - deployed.keys()), removed=sorted(deployed.keys() - local.keys())
    )
    for route_id in sorted(local.keys() & deployed.keys()):
        fields = {
            name: (deployed[route_id].get(name), value)
            for name, value in local[route_id].items()
            if deployed[route_id].get(name) != value
        }
        if fields:
            out.changed[route_id] = fields
    return out
