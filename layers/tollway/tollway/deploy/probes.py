"""Synthetic requests for every route of a compiled route table: what the pre-traffic hook
sends the new version of the router before CodeDeploy shifts any traffic to it.

One probe per route, chosen to have no effect a backend could keep:

    a route that needs credentials   its first method, without credentials: the router
                                     answers 401 before any backend or quota is touched
    a public route with GET or HEAD  that method: the backends are really called, so a
                                     version that cannot reach them answers 502/504
    any other public route           OPTIONS without CORS fields: matched, then 405

Every answer below 500 passes: a 4xx is the router working (no key, an IP list, a query
the route validates). A 5xx, or an invocation that fails (the function's init raised, its
table did not load), fails the deploy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tollway.table.routes import CompiledConfig, CompiledRoute

PARAM_VALUE = "tollway-probe"
USER_AGENT = "tollway-pre-traffic-hook"
SAFE_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Probe:
    route_id: str
    method: str
    path: str

    def event(self, request_id: str) -> dict[str, Any]:
        """An API Gateway HTTP API (payload 2.0) event, as the `live` alias receives them."""
        now = time.time()
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": "",
            "headers": {
                "host": "pre-traffic.invalid",
                "user-agent": USER_AGENT,
                "x-request-id": request_id,
                "x-forwarded-proto": "https",
            },
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "pre-traffic",
                "domainName": "pre-traffic.invalid",
                "domainPrefix": "pre-traffic",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": USER_AGENT,
                },
                "requestId": request_id,
                "routeKey": "$default",
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }


def probe_path(route: CompiledRoute) -> str:
    """The route's path with a harmless value in each parameter."""
    segments = []
    for segment in route.path.split("/"):
        segments.append(PARAM_VALUE if segment.startswith("{") and segment.endswith("}") else segment)
    return "/".join(segments) or "/"


def probe_method(route: CompiledRoute) -> str:
    if not route.public:
        return next(m for m in SAFE_ORDER if m in route.methods)
    for method in ("GET", "HEAD"):
        if method in route.methods:
            return method
    return "OPTIONS"


def probes(config: CompiledConfig) -> list[Probe]:
    return [Probe(route.id, probe_method(route), probe_path(route)) for route in config.routes]
