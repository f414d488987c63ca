"""Small real backends the tests start on loopback: echo, slow, failing, huge."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import parse_qs

import orjson


async def read_body(receive) -> bytes:
    """The whole request body of an ASGI request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def loopback_backend(scope, receive, send) -> None:
    """`/echo/...` describes the request it got; `/slow?ms=N`, `/status/N`, `/big?bytes=N`,
    `/usage?prompt=N&completion=M` (a chat API's answer with its token usage)."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    headers = [(b"content-type", b"application/json")]
    status = 200
    if path.startswith("/echo"):
        payload = orjson.dumps(
            {
                "method": scope["method"],
                "path": path,
                "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
                "body": base64.b64encode(body).decode(),
                "client_port": scope["client"][1],
            }
        )
        # Hop-by-hop fields the gateway must not pass back to its caller.
        headers += [(b"connection", b"x-hop"), (b"x-hop", b"1"), (b"keep-alive", b"timeout=5")]
        headers += [(b"x-backend", b"echo")]
    elif path == "/slow":
        await asyncio.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
        payload = b'{"slow":true}'
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        payload = b'{"internal":"stack trace of the backend"}'
    elif path == "/big":
        payload = b'"' + b"x" * int(query["bytes"][0]) + b'"'
    elif path == "/usage":
        prompt, completion = int(query.get("prompt", ["7"])[0]), int(query.get("completion", ["12"])[0])
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        payload = orjson.dumps({"choices": [{"message": {"content": "hi"}}], "usage": usage})
    else:
        status, payload = 404, b'{"error":"not found"}'
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
