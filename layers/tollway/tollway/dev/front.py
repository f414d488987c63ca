"""`tollway dev`'s front door for the demo key.

The gateway `tollway dev` serves is the production one: its authenticator accepts only keys
it issued (tollway.auth.keys) and knows of no demo. At start `tollway dev` issues the demo
consumer a real key (tollway.dev.demo), and this front, outside the gateway, puts that key
in place of the demo key's name wherever a request presents it (`X-API-Key: demo-key`, or
`Authorization: Bearer demo-key`), so the README's examples work as written. Nothing else
of a request is touched; every other credential reaches the gateway as sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


class DemoKeyFront:
    def __init__(self, app: App, demo: str, key: str) -> None:
        self.app = app
        self._swaps = {
            (b"x-api-key", demo.encode("latin-1")): key.encode("ascii"),
            (b"authorization", b"bearer " + demo.lower().encode("latin-1")): b"Bearer " + key.encode("ascii"),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the served app's own attributes (reload, gateway)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(name, self._value(name, value)) for name, value in scope["headers"]]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)

    def _value(self, name: bytes, value: bytes) -> bytes:
        name = name.lower()
        lookup = (name, value.lower()) if name == b"authorization" else (name, value)
        return self._swaps.get(lookup, value)
