"""CORS, answered by the router (not by API Gateway) so that `tollway dev` and Lambda agree.

Preflight requests (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) are
answered before authentication, quota or any backend; other responses from a CORS-enabled
route get the `Access-Control-*` fields when their `Origin` is allowed, errors included, so
a browser can read the problem details.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.core.messages import Response

# Fields a browser script may read on top of the CORS-safelisted ones.
ALWAYS_EXPOSED = ("x-request-id", "ratelimit", "ratelimit-policy", "retry-after", "tollway-partial")


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: frozenset[str]  # "*" allows any origin
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    credentials: bool
    max_age_s: int

    def allows(self, origin: str) -> bool:
        return origin in self.origins or ("*" in self.origins and not self.credentials)

    def _origin_fields(self, origin: str) -> list[tuple[str, str]]:
        wildcard = "*" in self.origins and not self.credentials
        fields = [("access-control-allow-origin", "*" if wildcard else origin)]
        if self.credentials:
            fields.append(("access-control-allow-credentials", "true"))
        if not wildcard:
            fields.append(("vary", "Origin"))
        return fields

    def preflight(self, origin: str, method: str, route_methods: frozenset[str]) -> Response:
        """204 with the grant, or 204 without CORS fields (the browser then refuses)."""
        allowed = [m for m in self.methods if m in route_methods]
        if not self.allows(origin) or method not in allowed:
            return Response(204, [("vary", "Origin")])
        fields = self._origin_fields(origin)
        fields.append(("access-control-allow-methods", ", ".join(allowed)))
        if self.headers:
            fields.append(("access-control-allow-headers", ", ".join(self.headers)))
        fields.append(("access-control-max-age", str(self.max_age_s)))
        return Response(204, fields)

    def fields(self, origin: str | None) -> list[tuple[str, str]]:
        """What an answer (errors included) to a request from `origin` carries: the grant for an
        allowed origin; for another origin, or none, only `Vary: Origin` (another Origin gets
        another answer: a browser's or a CDN's cache must not hand this one to a script)."""
        if origin is not None and self.allows(origin):
            return [*self._origin_fields(origin), ("access-control-expose-headers", ", ".join(self.expose))]
        if "*" in self.origins and not self.credentials:
            return []
        return [("vary", "Origin")]
