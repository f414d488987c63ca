"""Build a backend request from a compiled backend and the caller's request."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tollway.config.compile import CompiledBackend
from tollway.config.templates import TemplateValueError
from tollway.errors import BadRequest
from tollway.http.headers import NOT_TO_BACKEND, connection_tokens
from tollway.pipeline import Exchange


def encode_segment(value: str) -> str:
    """A value substituted into a path can never add a segment or climb out of one."""
    if value in (".", ".."):
        raise TemplateValueError(f"{value!r} is not allowed as a path value")
    return quote(value, safe="")


def encode_query(value: str) -> str:
    return quote(value, safe="")


def backend_url(backend: CompiledBackend, ex: Exchange, results: dict[str, Any], forward_query: bool) -> str:
    try:
        path = backend.path.render(ex.params, results, encode_segment)
        pairs = [f"{encode_query(k)}={t.render(ex.params, results, encode_query)}" for k, t in backend.query]
    except TemplateValueError as exc:
        if not results:
            raise BadRequest(str(exc)) from exc
        raise
    if forward_query and ex.request.query_string:
        pairs.append(ex.request.query_string.decode("latin-1"))
    url = f"{backend.base_url}{path}"
    return f"{url}?{'&'.join(pairs)}" if pairs else url


def backend_headers(backend: CompiledBackend, ex: Exchange, results: dict[str, Any]) -> list[tuple[str, str]]:
    request = ex.request
    drop = NOT_TO_BACKEND | connection_tokens(request.headers.get("connection"))
    headers = [(k, v) for k, v in request.headers.items() if k not in drop]
    headers.append(("x-request-id", request.request_id))
    headers.append(("x-forwarded-for", request.client_ip))
    headers.append(("x-forwarded-proto", request.scheme))
    if request.host:
        headers.append(("x-forwarded-host", request.host))
    principal = ex.principal
    if principal.credential != "anonymous":
        headers.append(("x-tollway-consumer", principal.consumer_id))
        if ex.route.forward_scopes:
            headers.append(("x-tollway-scopes", " ".join(sorted(principal.scopes))))
    for name, template in backend.headers:
        value = template.render(ex.params, results)
        if "\r" in value or "\n" in value:
            raise TemplateValueError(f"header {name} would contain a line break")
        headers = [(k, v) for k, v in headers if k != name]
        headers.append((name, value))
    return headers
