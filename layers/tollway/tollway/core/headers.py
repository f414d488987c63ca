"""Header sets, decided once: what never crosses the gateway in either direction."""

from __future__ import annotations

import re
import uuid

# RFC 9110 §7.6.1 connection-specific fields, plus the de-facto ones proxies drop.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Never forwarded to a backend: credentials for the gateway, and fields the gateway sets.
NOT_TO_BACKEND = HOP_BY_HOP | {
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    "x-request-id",
    "forwarded",
    "expect",
}
# Fields that frameworks and proxies behind a gateway read as the request's method, its
# URL or the caller's address (Rails, Laravel, ASP.NET, IIS, nginx `real_ip`, CDNs): only
# the gateway may say those, so a caller's never crosses, like the namespaces below.
NOT_TO_BACKEND |= {
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
}
# The gateway's namespaces: a backend trusts what it reads here as the gateway's word
# (who the consumer is, where the request came from), so no caller's field of these
# names ever crosses, whatever follows the prefix.
GATEWAY_PREFIXES = ("x-tollway-", "x-forwarded-")

# Never passed back from a backend: the gateway frames the response itself, and the
# fields that only describe the backend's software or the hops behind the gateway.
NOT_TO_CALLER = HOP_BY_HOP | {
    "content-length",
    "x-request-id",
    "date",
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "via",
}
# A caller reads these as the gateway's own word (`Tollway-Partial`, `Tollway-Cache`).
CALLER_PREFIXES = ("tollway-", "x-tollway-")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
# RFC 9110 §5.1/§5.5: a field name is a token; a value holds no control character but HTAB.
_FIELD_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
_FIELD_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def field_value_ok(value: str) -> bool:
    """No control character but HTAB: nothing that could end or split a header line."""
    return _FIELD_VALUE_CONTROL.search(value) is None


def well_formed(name: str, value: str) -> bool:
    """Whether a (lower-case) request field may be used: uvicorn refuses the others, but
    an API Gateway event reaches the app without that check. A name with an underscore is
    refused too (nginx's default): CGI and WSGI servers read `X_Tollway_Consumer` as
    `X-Tollway-Consumer`, so it would smuggle a protected name past any filter."""
    return (
        "_" not in name and _FIELD_NAME.match(name) is not None and _FIELD_VALUE_CONTROL.search(value) is None
    )


def to_backend(name: str) -> bool:
    """Whether a caller's (lower-case, well-formed) field may be forwarded to a backend."""
    return name not in NOT_TO_BACKEND and not name.startswith(GATEWAY_PREFIXES)


def to_caller(name: str) -> bool:
    """Whether a backend's (lower-case) response field may be passed to the caller."""
    return name not in NOT_TO_CALLER and not name.startswith(CALLER_PREFIXES)


def request_id(offered: str | None) -> str:
    """The caller's request id if it is sane, else a new one."""
    if offered and _SANE_REQUEST_ID.match(offered):
        return offered
    return uuid.uuid4().hex


def connection_tokens(value: str | None) -> frozenset[str]:
    """Fields a `Connection` header names are hop-by-hop too (RFC 9110 §7.6.1)."""
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())
