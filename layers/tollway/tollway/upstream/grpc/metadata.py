"""The metadata a gRPC service receives: what an HTTP backend gets as headers (SPEC §5, §7).

`grpc_metadata` takes the header list `tollway.upstream.request.backend_headers` builds for
the backend — the same function, so a field added there for HTTP backends (a trace
context, say) reaches gRPC services too — and keeps what gRPC allows in metadata:
- not the fields gRPC reserves or that describe the caller's HTTP body (`grpc-*`,
  `content-type`, `te`, `host`, `content-length`, the encodings, `accept`, `range`);
- names of lower-case letters, digits, `-`, `_` and `.` only;
- a value that is not printable ASCII (a JWT consumer id's UTF-8, say) goes as its bytes
  under the name plus `-bin`, gRPC's way to carry bytes; a caller's own `-bin` field is
  base64 (as on the wire) and arrives decoded, or not at all if it is not base64.
"""

from __future__ import annotations

import base64
import binascii
import re

RESERVED = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "accept",
        "accept-encoding",
        "range",
        "te",
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "trailer",
    }
)
_NAME = re.compile(r"^[0-9a-z_.-]+$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")

Metadata = tuple[tuple[str, str | bytes], ...]


def grpc_metadata(headers: list[tuple[str, str]]) -> Metadata:
    out: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        if name in RESERVED or name.startswith("grpc-") or not _NAME.match(name):
            continue
        if name.endswith("-bin"):
            try:
                out.append((name, base64.b64decode(value + "=" * (-len(value) % 4), validate=True)))
            except (binascii.Error, ValueError):
                continue
        elif _PRINTABLE.match(value):
            out.append((name, value))
        else:
            # Header text stands for latin-1 bytes (tollway/transport/exchange.py).
            out.append((name + "-bin", value.encode("latin-1", errors="replace")))
    return tuple(out)
