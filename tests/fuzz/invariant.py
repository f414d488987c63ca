"""The boundary invariant every fuzz case must keep, whatever the gateway answered:

a backend never receives a caller's field in the gateway's namespaces (`x-tollway-*`,
`x-forwarded-*`, `forwarded`, or any underscore spelling of a name), and never a path
that leaves its template (no segment that a decoding, normalising server would read as
`..`, `.`, or two segments, and no `;` a servlet container would cut a segment at: no
template here has one).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

# The value the fuzzers give every forged field: a backend must never see it.
FORGED = "forged-by-the-caller"
FORGED_HEADERS = {
    "X-Tollway-Consumer": FORGED,
    "X-Tollway-Scopes": FORGED,
    "X-Tollway-Plan": FORGED,
    "X-Forwarded-For": FORGED,
    "X-Forwarded-Host": FORGED,
    "X-Forwarded-Prefix": FORGED,
    "Forwarded": FORGED,
    "X_Tollway_Consumer": FORGED,
    "X_Forwarded_For": FORGED,
}
# What the gateway itself sets in its namespaces, each once.
GATEWAY_SET = {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-tollway-consumer",
    "x-tollway-scopes",
}
# Every backend path template of tests/fuzz/stack.py starts here.
TEMPLATE_ROOT = "/echo"


@dataclass
class Recording:
    """An ASGI backend wrapped to keep what each request brought: raw path and fields."""

    app: Any
    seen: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
            self.seen.append((scope["raw_path"].decode("latin-1"), headers))
        await self.app(scope, receive, send)


def confined(raw_path: str) -> bool:
    if raw_path != TEMPLATE_ROOT and not raw_path.startswith(TEMPLATE_ROOT + "/"):
        return False
    if ";" in raw_path:
        return False
    for segment in raw_path.split("/")[1:]:
        for _ in range(4):
            for form in (segment, unicodedata.normalize("NFKC", segment)):
                if "/" in form or "\\" in form or form.split(";", 1)[0] in (".", ".."):
                    return False
            segment = unquote(segment)
    return True


def assert_boundary_held(recording: Recording, where: str) -> None:
    for raw_path, headers in recording.seen:
        names = [k for k, _ in headers]
        assert not [n for n in names if "_" in n], f"an underscore field reached a backend: {where}"
        ours = [n for n in names if n.startswith(("x-tollway-", "x-forwarded-")) or n == "forwarded"]
        assert set(ours) <= GATEWAY_SET, (
            f"a caller's field reached a backend: {set(ours) - GATEWAY_SET}: {where}"
        )
        assert len(ours) == len(set(ours)), f"a gateway field reached a backend twice: {ours}: {where}"
        forged = [k for k, v in headers if k in GATEWAY_SET and FORGED in v]
        assert not forged, f"a caller's value reached a backend as {forged}: {where}"
        assert confined(raw_path), f"a backend got a path outside its template: {raw_path!r}: {where}"
