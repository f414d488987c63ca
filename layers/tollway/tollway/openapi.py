"""An OpenAPI 3.1 document of the gateway's public surface, generated from the route config.

It is the consumers' API reference and the input of the fuzzing tests: paths, methods,
path parameters, security per route, request schemas from `validate:`, and the problem
responses (401/403/404/405/413/429/502/504) with their headers. A route with gRPC backends
(SPEC §7) documents its request body and its answer with schemas derived from the messages
(tollway/config/message_schema.py), and the problems a service's status can become.
"""

from __future__ import annotations

from typing import Any

from tollway.table.routes import CompiledConfig, CompiledRoute

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "pointer": {"type": "string", "description": "JSON pointer of an invalid field (400 only)"},
    },
}
HEADERS = {
    "X-Request-Id": {
        "description": "The caller's request id if sane, else a new one",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "IETF RateLimit fields: the consumer's remaining quota",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "IETF RateLimit policy of the consumer's plan",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds until the limit frees capacity", "schema": {"type": "integer"}},
    "Tollway-Partial": {
        "description": "Optional backends missing from a composed response",
        "schema": {"type": "string"},
    },
}
PROBLEMS = {
    "400": "The request failed validation",
    "401": "Missing, malformed, unknown, revoked or expired credentials",
    "403": "Valid credentials without a required scope, or a denied source address",
    "404": "No route",
    "405": "Method not allowed",
    "409": "The service refused: a conflict (gRPC ALREADY_EXISTS or ABORTED)",
    "413": "Request body over the limit",
    "429": "Rate limit or quota exceeded",
    "502": "A required backend failed",
    "503": "The quota store is unavailable and the route fails closed",
    "504": "The deadline passed",
}
BODY_METHODS = {"POST", "PUT", "PATCH"}


def _problem_response(status: str, description: str) -> dict[str, Any]:
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if status == "429":
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if status == "401":
        headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
    if status == "405":
        headers["Allow"] = {"schema": {"type": "string"}}
    return {
        "description": description,
        "headers": headers,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _operation(route: CompiledRoute, method: str, multi: bool, schemas: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": seg[1:-1].removesuffix("+"),  # a greedy `{rest+}` is the parameter `rest`
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        }
        for seg in route.path.split("/")
        if seg.startswith("{")
    ]
    validator = route.validator
    if validator is not None and validator.query_schema:
        required = set(validator.query_schema.get("required", []))
        for name, schema in validator.query_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": schema})
    ok_headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if not route.public:
        ok_headers["RateLimit"] = {"$ref": "#/components/headers/RateLimit"}
        ok_headers["RateLimit-Policy"] = {"$ref": "#/components/headers/RateLimit-Policy"}
    if route.compose != "proxy":
        ok_headers["Tollway-Partial"] = {"$ref": "#/components/headers/Tollway-Partial"}
    responses: dict[str, Any] = {"200": {"description": "The backend's answer", "headers": ok_headers}}
    wanted = ["404", "405", "413", "502", "504"]
    if validator is not None:
        wanted.append("400")
    if not route.public:
        wanted += ["401", "403", "429", "503"]
    if route.ip is not None:
        wanted.append("403")
    for status in sorted(set(wanted)):
        responses[status] = {"$ref": f"#/components/responses/Problem{status}"}
    operation: dict[str, Any] = {
        "operationId": f"{route.id}.{method.lower()}" if multi else route.id,
        "tags": [route.team],
        "summary": f"{route.id} ({route.compose}: {', '.join(b.name for b in route.backends)})",
        "parameters": params,
        "responses": responses,
        "security": [] if route.public else _security(route),
    }
    if route.scopes:
        operation["description"] = "Required scopes: " + ", ".join(sorted(route.scopes))
    if method in BODY_METHODS:
        schema = validator.body_schema if validator is not None and validator.body_schema else {}
        operation["requestBody"] = {
            "required": bool(schema),
            "content": {"application/json": {"schema": schema}},
        }
    if any(b.grpc is not None for b in route.backends):
        _grpc(operation, route, method, schemas)
    return operation


def _grpc(operation: dict[str, Any], route: CompiledRoute, method: str, schemas: dict[str, Any]) -> None:
    """A route with gRPC backends: its messages as schemas, and the statuses a service can answer."""
    from tollway.config.message_schema import MessageSchemas

    responses = operation["responses"]
    refused = ["400", "401", "403", "404", "409", "429"] if route.compose == "proxy" else ["400"]
    for status in refused:
        responses.setdefault(status, {"$ref": f"#/components/responses/Problem{status}"})
    operation["responses"] = dict(sorted(responses.items()))
    ok = responses["200"]
    if route.compose != "proxy":
        properties: dict[str, Any] = {}
        for backend in route.backends:
            called = backend.grpc
            if called is None:
                properties[backend.name] = {}
                continue
            reply = MessageSchemas(called.descriptors, schemas).ref(called.response, reading=False)
            properties[backend.name] = {"type": "array", "items": reply} if called.server_streaming else reply
        if route.compose == "group":
            ok["content"] = {"application/json": {"schema": {"type": "object", "properties": properties}}}
        return
    backend = route.backends[0]
    grpc = backend.grpc
    assert grpc is not None
    messages = MessageSchemas(grpc.descriptors, schemas)
    reply = messages.ref(grpc.response, reading=False)
    ok["description"] = f"The reply of {grpc.name}, in proto3's canonical JSON mapping"
    if grpc.server_streaming:
        ok["content"] = {
            "application/json": {"schema": {"type": "array", "items": reply}},
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "When Accept names text/event-stream: one `data:` line of JSON per "
                    "message; a failure after the first message ends it with an `event: error` whose "
                    "data is the problem",
                }
            },
        }
    else:
        ok["content"] = {"application/json": {"schema": reply}}
    validated = route.validator is not None and route.validator.body_schema
    if method in BODY_METHODS and backend.body is None and not validated:
        operation["requestBody"] = {
            "required": False,
            "description": f"The {grpc.request} message; an empty body is an empty message",
            "content": {"application/json": {"schema": messages.ref(grpc.request, reading=True)}},
        }


def _security(route: CompiledRoute) -> list[dict[str, list[str]]]:
    security = []
    if "api_key" in route.auth:
        security.append({"ApiKey": []})
    if "jwt" in route.auth or "api_key" in route.auth:
        security.append({"Bearer": sorted(route.scopes) if "jwt" in route.auth else []})
    return security


def document(config: CompiledConfig, server: str | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    for route in sorted(config.routes, key=lambda r: r.path):
        methods = sorted(route.methods - ({"HEAD"} if "GET" in route.methods else set()))
        item = paths.setdefault(route.path.replace("+}", "}"), {})
        for method in methods:
            item[method.lower()] = _operation(route, method, len(methods) > 1, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Tollway gateway ({config.stage})",
            "version": "1",
            "description": "Generated by `tollway openapi` from infra/ route config.",
        },
        "servers": [{"url": server or "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": HEADERS,
            "responses": {f"Problem{s}": _problem_response(s, d) for s, d in PROBLEMS.items()},
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "Bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A JWT from a configured issuer, or an API key",
                },
            },
        },
    }
