"""Demo backend services for `tollway dev` and the tests: users, orders, reviews, assistants.

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


REPLY = "Tollway counts what each answer says it cost, token by token, exactly."


def completion(request: Any) -> tuple[dict[str, Any], list[str]]:
    """A chat-completions answer shaped like OpenAI's: deterministic, so tests can check bills.
    Prompt tokens are the words of the messages; the reply is cut at `max_tokens` words."""
    messages = request.get("messages") if isinstance(request, dict) else None
    words = sum(len(str(m.get("content", "")).split()) for m in messages or [] if isinstance(m, dict))
    limit = request.get("max_tokens") if isinstance(request, dict) else None
    reply = REPLY.split()
    if isinstance(limit, int) and limit >= 0:
        reply = reply[:limit]
    usage = {"prompt_tokens": words, "completion_tokens": len(reply), "total_tokens": words + len(reply)}
    answer = {
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": request.get("model", "demo") if isinstance(request, dict) else "demo",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(reply)}}],
        "usage": usage,
    }
    return answer, reply


async def assistants(scope, receive, send):
    """POST /v1/chat/completions, JSON or (`"stream": true`) Server-Sent Events whose last
    data chunk carries `usage`, as chat APIs send it."""
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/health":
        await _answer(send, 200, b"application/json", orjson.dumps({"status": "ok"}))
        return
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await _answer(send, 404, b"application/json", orjson.dumps({"error": "not found"}))
        return
    try:
        request = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        await _answer(send, 400, b"application/json", orjson.dumps({"error": "body is not JSON"}))
        return
    answer, reply = completion(request)
    if not (isinstance(request, dict) and request.get("stream")):
        await _answer(send, 200, b"application/json", orjson.dumps(answer))
        return
    head = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    for word in reply:
        delta = {"id": "chatcmpl-demo", "choices": [{"index": 0, "delta": {"content": word + " "}}]}
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + orjson.dumps(delta) + b"\n\n",
                "more_body": True,
            }
        )
    final = {"id": "chatcmpl-demo", "choices": [], "usage": answer["usage"]}
    tail = b"data: " + orjson.dumps(final) + b"\n\ndata: [DONE]\n\n"
    await send({"type": "http.response.body", "body": tail})


async def _answer(send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


DEMO_SERVICES = {
    "users": service_app(users),
    "orders": service_app(orders),
    "reviews": service_app(reviews),
    "assistants": assistants,
}
