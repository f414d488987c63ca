"""Differential: the same request through both hosts meets the same gateway (issue 18).

Hypothesis builds a request (method, a path in many spellings, a query, header fields, a
body); it is sent byte for byte over a socket to the app under uvicorn, and as the API
Gateway HTTP API (v2) event of the same request to `functions/router/app.handler`. Both
must reach the same route, give the same answer (status, body, the fields a caller reads),
and make the same backend requests, recorded by one backend that keeps each as it arrived.
The only difference allowed is the scheme each host serves (`x-forwarded-proto`).

The event is built as API Gateway builds it: lower-case names, a repeated field joined
with ",", `Cookie` fields split into `cookies`, the body base64-encoded; the path as sent.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tollway.assemble import build_app
from tollway.observability import logger
from tollway.settings import Settings

from tests.backends import read_body
from tests.fuzz.stack import DERANDOMIZE, EXAMPLES
from tests.infra_files import write_infra
from tests.lambda_router import Context, load_router

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "tests" / "events" / "http_api_v2_get.json").read_text())
ISSUER = "https://hosts.tollway.local/"
SECRET = "a-differential-secret-of-32-bytes!!"

ROUTES = """\
- id: items.admin
  path: /v1/items/admin
  methods: [GET, DELETE]
  auth: [jwt]
  backends: [{name: b, service: rec, path: /rec/items/admin}]
- id: items.get
  path: /v1/items/{id}
  methods: [GET, POST, DELETE]
  public: true
  backends: [{name: b, service: rec, path: "/rec/items/{id}", query: {fixed: "1"}}]
- id: items.tag
  path: /v1/items/{id}/tags/{tag}
  methods: [GET]
  public: true
  backends: [{name: b, service: rec, path: "/rec/items/{id}/tags/{tag}"}]
- id: ops.run
  path: "/v1/ops/run:now"
  methods: [POST]
  auth: [jwt]
  backends: [{name: b, service: rec, path: /rec/ops}]
- id: files
  path: /v1/files/{rest+}
  methods: [GET]
  public: true
  backends: [{name: b, service: rec, path: "/rec/files/{rest}"}]
- id: search
  path: /v1/search
  methods: [GET]
  public: true
  validate: {query: {type: object, properties: {limit: {type: integer, maximum: 10}}}}
  backends: [{name: b, service: rec, path: /rec/search}]
- id: group
  path: /v1/group/{id}
  methods: [GET]
  auth: [jwt]
  compose: group
  backends:
    - {name: one, service: rec, path: "/rec/one/{id}"}
    - {name: two, service: rec, path: /rec/two, query: {of: "{one.path}"}, required: false}
"""
AUTH = f"""\
auth:
  jwt:
    - {{issuer: "{ISSUER}", audience: tollway, hs256_secret_env: HOSTS_JWT_SECRET, default_plan: free}}
"""
# What the two hosts may legitimately differ in: the scheme each serves.
HOST_SPECIFIC = {"x-forwarded-proto"}
# Fields of an answer a caller reads (framing and the server's own fields aside).
READ_BY_CALLERS = ("content-type", "allow", "www-authenticate", "tollway-partial", "x-request-id")


@dataclass(frozen=True)
class Seen:
    method: str
    raw_path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


JSON = b"application/json"
# A request's trace (tollway.core.trace) is new per request when the caller sent none: its
# ids are random, so the hosts are compared on its shape and flags.
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})")


def comparable(name: str, value: str) -> tuple[str, str]:
    if name == "traceparent" and (m := TRACEPARENT.fullmatch(value)) is not None:
        return name, f"00-<trace id>-<parent id>-{m.group(1)}"
    return name, value


class Recorder:
    """One backend for both hosts: keeps each request as it arrived, answers with its path."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        raw_path = scope["raw_path"].decode("latin-1")
        headers = tuple(
            sorted(
                comparable(k.decode("latin-1"), v.decode("latin-1"))
                for k, v in scope["headers"]
                if k.decode("latin-1") not in HOST_SPECIFIC
            )
        )
        query = scope["query_string"].decode("latin-1")
        self.seen.append(Seen(scope["method"], raw_path, query, headers, body))
        payload = json.dumps({"path": raw_path}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", JSON)]})
        await send({"type": "http.response.body", "body": payload})


@dataclass
class Hosts:
    url: str
    handler: Any
    backend: Recorder
    log: io.StringIO


@pytest.fixture
def hosts(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    backend = Recorder()
    infra = write_infra(tmp_path, {"rec": serve(backend)}, ROUTES, auth=AUTH, plans="plans:\n  free: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOSTS_JWT_SECRET", SECRET)
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    url = serve(build_app(Settings.from_environ(os.environ, infra)), proxy_headers=False)
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger("tollway").addHandler(handler)
    try:
        yield Hosts(url, load_router().handler, backend, records)
    finally:
        logging.getLogger("tollway").removeHandler(handler)


# ---- the corpus -----------------------------------------------------------------------

UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
# Characters a request line may carry in a path as themselves (RFC 3986 pchar).
PCHAR = UNRESERVED + "!$&'()*+,;=:@"


@st.composite
def spelled(draw, text: str) -> str:
    """`text` with any of its characters percent-escaped, in either hex case."""
    out = []
    for ch in text:
        if ch in PCHAR and draw(st.integers(0, 3)) != 0:
            out.append(ch)
        else:
            for byte in ch.encode():
                hex_ = f"{byte:02X}"
                out.append("%" + (hex_ if draw(st.booleans()) else hex_.lower()))
    return "".join(out)


WORDS = ["admin", "Admin", "items", "tags", "run:now", "ops", "x", "1", "a b", "é", "a/b", "a\\b", ".", ".."]
SEGMENT = st.one_of(
    st.sampled_from(WORDS).flatmap(spelled),
    st.text(st.sampled_from(PCHAR), min_size=1, max_size=8),
    st.sampled_from(["%2e%2e", "..;x", "%2F", "%252F", "%25", "%00", "%C3%A9", "%ff", "%zz"]),
)
PREFIXES = [
    ["v1", "items"],
    ["v1", "items", "admin"],
    ["v1", "ops"],
    ["v1", "files"],
    ["v1", "search"],
    ["v1", "group"],
    ["v1"],
]


# The routes' shapes (a `{}` is a parameter, `{}+` the rest of the path) and methods.
SHAPES = [
    ("/v1/items/admin", ["GET", "DELETE"]),
    ("/v1/items/{}", ["GET", "POST", "DELETE"]),
    ("/v1/items/{}/tags/{}", ["GET"]),
    ("/v1/ops/run:now", ["POST"]),
    ("/v1/files/{}+", ["GET"]),
    ("/v1/search", ["GET"]),
    ("/v1/group/{}", ["GET"]),
]


@st.composite
def paths(draw) -> str:
    """Half the time a route's shape in some spelling, half a prefix and any segments."""
    if draw(st.booleans()):
        shape, _ = draw(st.sampled_from(SHAPES))
        segments = []
        for part in shape.split("/")[1:]:
            if part == "{}":
                segments.append(draw(SEGMENT))
            elif part == "{}+":
                segments += draw(st.lists(SEGMENT, min_size=1, max_size=3))
            else:
                segments.append(draw(spelled(part)))
        return "/" + "/".join(segments)
    prefix = [draw(spelled(s)) for s in draw(st.sampled_from(PREFIXES))]
    rest = draw(st.lists(SEGMENT, max_size=3))
    return "/" + "/".join(prefix + rest)


QUERY_PIECE = st.one_of(
    st.sampled_from(
        ["limit=5", "limit=50", "LIMIT=5", "li%6Dit=5", "limit=nan", "fixed=2", "a=1;fixed=evil", "q=a+b"]
    ),
    st.text(st.sampled_from(UNRESERVED + "=;+%,!$'()*:@/?"), max_size=10),
)
FIELD_NAMES = [
    "x-custom",
    "accept",
    "accept-encoding",
    "content-type",
    "cookie",
    "origin",
    "access-control-request-method",
    "x-tollway-consumer",
    "x-forwarded-for",
    "x-forwarded-host",
    "forwarded",
    "x-http-method-override",
    "x-real-ip",
    "x-original-url",
    "authorization",
    "host",  # a second one: a 400 on both hosts (API Gateway joins it to the first with ",")
]
FIELD_VALUE = st.one_of(
    st.sampled_from(["1", "GET", "a=1; b=2", "https://app.example", "gzip", "application/json", "admin"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
)
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]


def bearer(kind: str) -> str:
    claims = {"iss": ISSUER, "aud": "tollway", "sub": "hosts", "exp": 4102444800}
    if kind == "forged":
        return "Bearer " + jwt.encode(claims, "not-the-secret-but-long-enough-xx", algorithm="HS256")
    return "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")


@st.composite
def requests_(draw) -> tuple[str, str, list[tuple[str, str]], bytes]:
    target = draw(paths())
    shaped = [methods for shape, methods in SHAPES if shape.split("{")[0] in target]
    method = draw(st.sampled_from(shaped[-1] if shaped and draw(st.booleans()) else METHODS))
    pieces = draw(st.lists(QUERY_PIECE, max_size=3))
    if pieces:
        target += "?" + "&".join(pieces)
    fields = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES), FIELD_VALUE), max_size=5))
    credential = draw(st.sampled_from(["none", "valid", "valid", "forged"]))
    if credential != "none":
        fields.append(("authorization", bearer(credential)))
    body = draw(st.sampled_from([b"", b'{"a":1}', b"x" * 10])) if method in ("POST", "PUT", "PATCH") else b""
    return method, target, fields, body


# ---- the two hosts --------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    fields: dict[str, str]
    body: bytes


def head_fields(host: str, fields: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """Every field of the request, framing included: both hosts see the same list."""
    framing = [("Host", host), ("Connection", "close")]
    if body:
        framing.append(("Content-Length", str(len(body))))
    return framing + fields


def over_socket(url: str, method: str, target: str, fields: list[tuple[str, str]], body: bytes) -> Answer:
    parts = urlsplit(url)
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in fields)]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *rest = head.decode("latin-1").split("\r\n")
    out: dict[str, str] = {}
    for line in rest:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        out[name] = f"{out[name]},{value.strip()}" if name in out else value.strip()
    return Answer(int(status_line.split(" ")[1]), out, payload)


def as_event(handler, method: str, target: str, fields: list[tuple[str, str]], body: bytes) -> Answer:
    event = copy.deepcopy(EVENT)
    path, _, query = target.partition("?")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = query
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["sourceIp"] = "127.0.0.1"
    event.pop("queryStringParameters", None)
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in fields:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    event["headers"] = headers
    if cookies:
        event["cookies"] = cookies
    else:
        event.pop("cookies", None)
    if body:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    result = handler(event, Context())
    out = {k.lower(): v for k, v in result.get("headers", {}).items()}
    raw = result.get("body", "")
    payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
    return Answer(result["statusCode"], out, payload)


def routed(log: io.StringIO) -> list[str | None]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    return [line.get("route") for line in lines if line.get("message") == "access"]


def visible(answer: Answer, method: str) -> tuple[int, dict[str, str], bytes]:
    fields = {k: answer.fields[k] for k in READ_BY_CALLERS if k in answer.fields}
    return answer.status, fields, b"" if method == "HEAD" else answer.body


def test_the_two_hosts_route_decide_and_forward_alike(hosts: Hosts) -> None:
    cases = {"examples": 0, "forwarded": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests_())
    def both(request: tuple[str, str, list[tuple[str, str]], bytes]) -> None:
        method, target, fields, body = request
        # One request id for both, so the answers' bodies (problem details too) compare.
        fields = [*fields, ("X-Request-Id", "two-hosts")]
        head = head_fields("gw.test", fields, body)
        where = f"{method} {target} {fields!r}"

        hosts.backend.seen.clear()
        hosts.log.seek(0), hosts.log.truncate()
        served = over_socket(hosts.url, method, target, head, body)
        served_route, served_seen = routed(hosts.log), sorted(hosts.backend.seen, key=repr)

        hosts.backend.seen.clear()
        hosts.log.seek(0), hosts.log.truncate()
        invoked = as_event(hosts.handler, method, target, head, body)
        invoked_route, invoked_seen = routed(hosts.log), sorted(hosts.backend.seen, key=repr)

        assert served_route == invoked_route, f"routes differ: {where}"
        assert visible(served, method) == visible(invoked, method), f"answers differ: {where}"
        assert served_seen == invoked_seen, f"backend requests differ: {where}"
        cases["examples"] += 1
        cases["forwarded"] += bool(served_seen)

    both()
    # The corpus reaches backends (a third of it or so), not only refusals.
    assert cases["forwarded"] >= cases["examples"] // 10, cases
