"""Build a backend request from a compiled backend, the caller's request and earlier answers.

`results` holds the JSON of the backends that already answered, as they sent it (before
`pick`/`rename`), so `{user.id}` names the backend's own field. A bad path parameter is the
caller's fault (400); a bad value from a backend's answer is a `TemplateValueError`, which
fails that backend.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from tollway.core.context import Context
from tollway.core.headers import connection_tokens, field_value_ok, to_backend
from tollway.core.messages import BackendRequest
from tollway.core.trace import W3C_FIELDS
from tollway.errors import BadRequest
from tollway.table.routes import CompiledBackend, CompiledRoute
from tollway.table.templates import ParamValueError, TemplateValueError, render_json_template
from tollway.upstream.cache import Fill, fill_for
from tollway.upstream.compose import write_json

# Headers of the caller's request that describe its body or its wishes for the answer's
# encoding: wrong for a backend whose body the gateway writes or whose JSON it must read.
NOT_TO_COMPOSED = frozenset({"content-type", "content-encoding", "accept", "accept-encoding", "range"})


# How many more times a backend (or a proxy in front of it) may percent-decode a path.
_DECODINGS = 3


def _confined(segment: str) -> bool:
    """Whether `segment` stays one segment however a backend reads it: decoded again,
    normalised (NFKC folds `\uff0f` into `/`), `\\` read as a separator (Windows, some
    servlet containers), or `;params` stripped (`..;x` is `..` to Tomcat)."""
    for _ in range(_DECODINGS):
        for form in (segment, unicodedata.normalize("NFKC", segment)):
            if "/" in form or "\\" in form or form.split(";", 1)[0] in (".", ".."):
                return False
        decoded = unquote(segment)
        if decoded == segment:
            return True
        segment = decoded
    return False


def encode_segment(value: str) -> str:
    """A value substituted into a path can never add a segment or climb out of one, nor
    vanish: `/items/{user.id}` with an empty id would be `/items/`, the whole collection."""
    if not value:
        raise TemplateValueError("a path value must not be empty")
    if not _confined(value):
        raise TemplateValueError("a path value must not hold '/', '\\' or a dot segment")
    return quote(value, safe="")


def encode_greedy(value: str) -> str:
    """A `{name+}` value may span segments, but each one must be confined as above."""
    return "/".join(encode_segment(s) if s else s for s in value.split("/"))


def encode_query(value: str) -> str:
    return quote(value, safe="")


def encode_query_value(value: str) -> str:
    """A templated query value: an empty one fails like a missing one (`?owner=` reads
    as "no owner" to many backends)."""
    if not value:
        raise TemplateValueError("a query value must not be empty")
    return quote(value, safe="")


def backend_method(backend: CompiledBackend, ctx: Context[CompiledRoute], composed: bool) -> str:
    if backend.method:
        return backend.method
    # A composed route needs a body from every backend, so a caller's HEAD becomes a GET.
    if composed and ctx.request.method == "HEAD":
        return "GET"
    return ctx.request.method


def build_request(
    backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any], *, composed: bool
) -> BackendRequest:
    # A request whose answer a cache may store carries only what that entry's key covers.
    fill = fill_for(ctx.request.method, ctx.route.cache, backend.cache if composed else None)
    try:
        path = backend_path(backend, ctx, results, forward_query=not composed)
        headers = backend_headers(backend, ctx, results, fill)
        body: bytes | None
        if backend.body is not None:
            body = write_json(render_json_template(backend.body, ctx.params, results))
        else:
            body = None if fill is not None else ctx.request.body or None
    except ParamValueError as exc:
        raise BadRequest(str(exc)) from exc
    if (
        not composed
        and "accept-encoding" not in ctx.request.headers
        and not _templated(backend, "accept-encoding")
    ):
        # A proxied body passes as the backend encoded it: without this the HTTP client's
        # default (`gzip, deflate`) would hand gzip to a caller who never accepted it.
        headers.append(("accept-encoding", "identity"))
    if composed or backend.body is not None:
        drop = NOT_TO_COMPOSED if composed else frozenset({"content-type", "content-encoding"})
        headers = [(k, v) for k, v in headers if k not in drop or _templated(backend, k)]
        if composed and not _templated(backend, "accept"):
            headers.append(("accept", "application/json"))
        if backend.body is not None and not _templated(backend, "content-type"):
            headers.append(("content-type", "application/json"))
    if body is not None and backend.body is None and _validates_body(ctx.route):
        headers = _as_validated(backend, headers, ctx.request.headers.get("content-type"))
    if ctx.route.metering is not None and not composed:
        # The gateway reads a metered answer's usage: it must come uncompressed.
        headers = [(k, v) for k, v in headers if k != "accept-encoding"]
        headers.append(("accept-encoding", "identity"))
    return BackendRequest(backend_method(backend, ctx, composed), path, headers, body)


def _validates_body(route: CompiledRoute) -> bool:
    return route.validator is not None and route.validator.body is not None


# One JSON media type (`application/json`, `application/<restricted-name chars>+json`, RFC 6838
# 4.2), and at most a UTF-8 charset: nothing a backend could read as another type. PHP reads a
# Content-Type up to its first `;`, `,` or space, werkzeug before 2.3 up to a comma or a space:
# `application/x-www-form-urlencoded, +json` is a form to them.
_JSON_MEDIA = re.compile(
    r'application/(?:[a-z0-9!#$&^_.+-]*\+)?json(?:[ \t]*;[ \t]*charset=(?:utf-?8|"utf-?8"))?', re.IGNORECASE
)


def _json_media(value: str | None) -> bool:
    """A JSON media type (`application/json`, `application/*+json`), in UTF-8 if it names a charset,
    spelled as one media type and nothing else."""
    return value is not None and _JSON_MEDIA.fullmatch(value.strip(" \t")) is not None


def _as_validated(
    backend: CompiledBackend, headers: list[tuple[str, str]], content_type: str | None
) -> list[tuple[str, str]]:
    """A validated body goes as what the schema read: JSON in UTF-8, its bytes as they are. A
    backend reads a body as its Content-Type and Content-Encoding say: as a form, the JSON
    `{"amount": 5, "note": "&amount=-1000"}` is `amount=-1000`."""
    keep = content_type if _json_media(content_type) else "application/json"
    out = [
        (k, v) for k, v in headers if k not in ("content-type", "content-encoding") or _templated(backend, k)
    ]
    if not _templated(backend, "content-type"):
        out.append(("content-type", keep))
    return out


def _templated(backend: CompiledBackend, name: str) -> bool:
    return any(k == name for k, _ in backend.headers)


def backend_path(
    backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any], forward_query: bool
) -> str:
    greedy = ctx.route.greedy
    path = backend.path.render(
        ctx.params, results, encode_segment, {greedy: encode_greedy} if greedy else None
    )
    pairs = [
        f"{encode_query(k)}={t.render(ctx.params, results, encode_query_value)}" for k, t in backend.query
    ]
    if forward_query and ctx.request.query_string:
        caller = ctx.request.query_string.decode("latin-1")
        if backend.query:
            # Split as the gateway reads it, and sent so that a backend that also splits on
            # `;` reads the same pairs: `a=1;fixed=evil` is a's value, never a pinned name's.
            caller = "&".join(
                p.replace(";", "%3B") for p in caller.split("&") if p and _name(p) not in backend.pinned
            )
        if caller:
            pairs.append(caller)
    return f"{path}?{'&'.join(pairs)}" if pairs else path


def _name(piece: str) -> str:
    """A query piece's name as a backend may read it: decoded, in any case."""
    return unquote_plus(piece.partition("=")[0]).casefold()


def backend_headers(
    backend: CompiledBackend, ctx: Context[CompiledRoute], results: dict[str, Any], fill: Fill | None = None
) -> list[tuple[str, str]]:
    """`fill`: the request may fill a cache entry, so it carries only the caller fields the
    key covers, not the caller's address, and who is asking only to a per-consumer cache."""
    request = ctx.request
    named = connection_tokens(request.headers.get("connection"))
    # The trace the backend joins replaces the caller's fields of it (tollway.core.trace).
    trace = request.trace.headers() if request.trace is not None else []
    named |= W3C_FIELDS | {name for name, _ in trace}
    headers = [
        (k, v)
        for k, v in request.headers.items()
        if to_backend(k) and k not in named and (fill is None or k in fill.keyed)
    ]
    rid = request.request_id
    if fill is not None and request.headers.get("x-request-id") == rid:
        # The caller chose this id (text, not in the entry's key): a backend that writes its
        # request id into its answer would store it for every caller of the entry. The fill
        # gets an id of its own and joins the caller's trace by `traceparent`.
        rid = uuid.uuid4().hex
    headers.append(("x-request-id", rid))
    if fill is not None:
        # A fill joins the caller's trace by its ids alone (per fill, never in a key:
        # upstream/cache.py PER_FILL); `tracestate` is free text the caller chose, which a
        # backend that reflects it would store for every caller of the entry.
        trace = [(k, v) for k, v in trace if k != "tracestate"]
    headers += trace
    if fill is None:
        headers.append(("x-forwarded-for", request.client_ip))
    headers.append(("x-forwarded-proto", request.scheme))
    if request.host:
        headers.append(("x-forwarded-host", request.host))
    principal = ctx.principal
    if principal.credential != "anonymous" and (fill is None or not fill.shared):
        # Header text stands for latin-1 bytes: a (JWT) consumer id goes as its UTF-8 bytes.
        headers.append(("x-tollway-consumer", principal.consumer_id.encode().decode("latin-1")))
        if ctx.route.forward_scopes:
            headers.append(("x-tollway-scopes", " ".join(sorted(principal.scopes))))
    for name, template in backend.headers:
        value = template.render(ctx.params, results)
        if not field_value_ok(value):
            from_caller = all(ref.backend is None for ref in template.refs)
            error = ParamValueError if from_caller else TemplateValueError
            raise error(f"header {name} would contain a control character")
        # Header strings hold bytes as latin-1 (as the caller's do): send a value's UTF-8 bytes.
        value = value.encode().decode("latin-1")
        headers = [(k, v) for k, v in headers if k != name]
        headers.append((name, value))
    return headers
