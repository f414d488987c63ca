"""Row 6c: a public route's p99 while a flood of key lookups waits on a slow DynamoDB.

A key the gateway must look up (issued format, MAC holds, not in the table) waits for
DynamoDB; a forged one (MAC under another secret) must not even ask. Under one uvicorn
worker, a lookup that blocked the event loop stalled every route, public ones included;
awaited, it costs the others only the CPU of its own request.

    slow_dynamodb(upstream, delay_ms)   an ASGI front for the moto server that answers
                                        every DynamoDB call `delay_ms` late
    Flood(url, keys)                    a thread that sends one request per key of
                                        `keys()`, new keys every pass (the negative cache
                                        must not answer them), `concurrency` at a time
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx

from tests.backends import read_body


def slow_dynamodb(upstream: str, delay_ms: float) -> Any:
    client: dict[str, httpx.AsyncClient] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["method"] != "POST":  # the bench's readiness probe
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await asyncio.sleep(delay_ms / 1000)
        if "c" not in client:
            client["c"] = httpx.AsyncClient(base_url=upstream, trust_env=False, timeout=30)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        answer = await client["c"].post("/", content=body, headers=headers)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [(b"content-type", answer.headers.get("content-type", "").encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})

    return app


class Flood:
    def __init__(self, url: str, keys: Callable[[], list[str]], concurrency: int = 50) -> None:
        self.url = url
        self.keys = keys
        self.concurrency = concurrency
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
            gate = asyncio.Semaphore(self.concurrency)

            async def one(key: str) -> None:
                async with gate:
                    if self._stop.is_set():
                        return
                    try:
                        response = await client.get(self.url, headers={"x-api-key": key})
                        status = response.status_code
                    except httpx.HTTPError:
                        status = 0
                    self.sent += 1
                    self.statuses[status] = self.statuses.get(status, 0) + 1

            while not self._stop.is_set():
                await asyncio.gather(*(one(key) for key in self.keys()))
