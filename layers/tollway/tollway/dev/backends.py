"""Demo backend services for `tollway dev` and the tests: users, orders, reviews.

Small ASGI apps with fixed data, enough to show proxying and composition. Each also
answers `/health`. They echo the headers they received under `/echo`, so a newcomer
can see what the gateway forwards.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

USERS = {
    "1": {"id": "1", "name": "Ada Lovelace", "email": "ada@example.com", "country": "GB"},
    "2": {"id": "2", "name": "Grace Hopper", "email": "grace@example.com", "country": "US"},
}
ORDERS = [
    {"id": "o-100", "user": "1", "total": "42.00", "currency": "EUR"},
    {"id": "o-101", "user": "1", "total": "7.50", "currency": "EUR"},
    {"id": "o-200", "user": "2", "total": "19.99", "currency": "USD"},
]
REVIEWS = {
    "1": [{"stars": 5, "text": "Analytical engine: superb."}],
    "2": [{"stars": 4, "text": "Found a moth."}],
}


def _json(status: int, value: Any) -> tuple[int, bytes]:
    return status, orjson.dumps(value)


def users(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
    parts = path.strip("/").split("/")
    if parts == ["users"]:
        return _json(200, list(USERS.values()))
    if len(parts) == 2 and parts[0] == "users":
        user = USERS.get(parts[1])
        return _json(200, user) if user else _json(404, {"error": "no such user"})
    return _json(404, {"error": "not found"})


def orders(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
    if path.rstrip("/") == "/orders":
        user = query.get("user", [None])[0]
        return _json(200, {"orders": [o for o in ORDERS if user is None or o["user"] == user]})
    return _json(404, {"error": "not found"})


def reviews(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "reviews":
        return _json(200, {"reviews": REVIEWS.get(parts[1], [])})
    return _json(404, {"error": "not found"})


def service_app(handler):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        path = scope["path"]
        if path == "/health":
            status, body = _json(200, {"status": "ok"})
        elif path == "/echo":
            status, body = _json(200, {"headers": {k.decode(): v.decode() for k, v in scope["headers"]}})
        else:
            status, body = handler(path, parse_qs(scope["query_string"].decode()))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


DEMO_SERVICES = {"users": service_app(users), "orders": service_app(orders), "reviews": service_app(reviews)}
