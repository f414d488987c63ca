"""A cached answer is a function of its key alone (issue 18).

Two containers of the router (`functions/router/app.handler`, each its own caches) over one
backend that reflects everything it receives. For each generated pair of requests that
share a cache key (method, route parameters, query, Host, the fields the cache names in
`vary`, the consumer unless the cache is shared) and differ in everything else (cookies,
other fields, a body, the source address, for a shared cache the credential): container A
answers the first (filling the entry) and then the second from its cache; container B
answers the second afresh. Both answers to the second request must be the same, and so
must the backend requests the two fills made: nothing one caller sent outside the key can
reach another caller. The only differences allowed are the ids of the one request that
fills an entry (`X-Request-Id`, `traceparent`), which the backend here does not reflect;
a caller's `tracestate` is not an id but its own text, and is reflected.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backends import read_body
from tests.fuzz.stack import DERANDOMIZE, EXAMPLES
from tests.infra_files import write_infra
from tests.lambda_router import Context, load_router

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "tests" / "events" / "http_api_v2_get.json").read_text())
ISSUER = "https://cache.tollway.local/"
SECRET = "a-cache-key-secret-of-at-least-32-b"
# The ids of the one request that fills an entry (its trace's span id is new per request).
PER_FILL = {"x-request-id", "traceparent"}

ROUTES = """\
- id: shared
  path: /v1/shared/{k}
  methods: [GET, HEAD]
  public: true
  cache: {ttl_s: 600, shared: true}
  backends: [{name: b, service: rec, path: "/reflect/{k}"}]
- id: varies
  path: /v1/varies/{k}
  methods: [GET]
  auth: [jwt]
  cache: {ttl_s: 600, shared: true, vary: [accept-language, x-tenant]}
  validate: {query: {type: object, properties: {page: {type: integer}}}}
  backends: [{name: b, service: rec, path: "/reflect/{k}", query: {fixed: "1"}}]
- id: mine
  path: /v1/mine/{k}
  methods: [GET, HEAD]
  auth: [jwt]
  forward_scopes: true
  cache: {ttl_s: 600}
  backends: [{name: b, service: rec, path: "/reflect/{k}"}]
- id: composed
  path: /v1/composed/{k}
  methods: [GET]
  public: true
  compose: group
  backends:
    - {name: one, service: rec, path: "/reflect/{k}", cache: {ttl_s: 600, shared: true}}
    - {name: two, service: rec, path: "/reflect/{one.method}/two", cache: {ttl_s: 600, shared: true}}
"""
AUTH = f"""\
auth:
  jwt:
    - {{issuer: "{ISSUER}", audience: tollway, hs256_secret_env: CACHE_JWT_SECRET, default_plan: free}}
"""


JSON = b"application/json"
NAMES = st.sampled_from(["ann", "bob"])


class Reflector:
    """Answers with everything it received, but the ids of the request that fills an entry."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        got = {
            "method": scope["method"],
            "path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": sorted(
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in scope["headers"]
                if k.decode("latin-1") not in PER_FILL
            ),
            "body": body.decode("latin-1"),
        }
        self.seen.append(got)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", JSON)]})
        await send({"type": "http.response.body", "body": json.dumps(got).encode()})


@dataclass
class Containers:
    a: Any
    b: Any
    backend: Reflector


@pytest.fixture
def containers(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Containers:
    backend = Reflector()
    infra = write_infra(tmp_path, {"rec": serve(backend)}, ROUTES, auth=AUTH, plans="plans:\n  free: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CACHE_JWT_SECRET", SECRET)
    monkeypatch.setenv("TOLLWAY_INFRA_DIR", str(infra))
    monkeypatch.setenv("TOLLWAY_STAGE", "dev")
    return Containers(load_router().handler, load_router().handler, backend)


def bearer(sub: str, scope: str) -> str:
    claims = {"iss": ISSUER, "aud": "tollway", "sub": sub, "scope": scope, "exp": 4102444800}
    return "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")


TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10)
# Whatever a caller may send that no key covers.
PRIVATE_FIELDS = ["cookie", "x-poison", "user-agent", "origin", "referer", "x-forwarded-for", "forwarded"]


@st.composite
def private(draw, route: str) -> dict[str, Any]:
    """One caller's own part of a request: none of it is in the key."""
    fields = dict(draw(st.lists(st.tuples(st.sampled_from(PRIVATE_FIELDS), TEXT), max_size=4)))
    if draw(st.booleans()):
        # The caller's trace: its ids join the fill's trace, its free-text state must not.
        fields["traceparent"] = f"00-{draw(st.sampled_from(['a', 'b'])) * 32}-{'c' * 16}-01"
        fields["tracestate"] = "v=" + draw(TEXT).replace(",", "").replace("=", "")
    if route == "shared" and draw(st.booleans()):
        fields["authorization"] = bearer(draw(NAMES), "read")
    if route == "varies":
        # A shared entry serves every consumer: who asks is not part of it.
        fields["authorization"] = bearer(draw(NAMES), draw(st.sampled_from(["a", "b"])))
    return {
        "fields": fields,
        "body": draw(st.sampled_from([b"", b"secret body", b'{"token":"x"}'])),
        "source": draw(st.sampled_from(["203.0.113.7", "198.51.100.9", "2001:db8::1"])),
    }


@st.composite
def keyed(draw) -> dict[str, Any]:
    """The part of a request a cache key covers."""
    route = draw(st.sampled_from(["shared", "varies", "mine", "composed"]))
    methods = {"shared": ["GET", "HEAD"], "mine": ["GET", "HEAD"]}.get(route, ["GET"])
    fields = {}
    if draw(st.booleans()):
        fields["accept-encoding"] = draw(st.sampled_from(["gzip", "identity", "br, gzip"]))
    if route == "varies":
        fields["accept-language"] = draw(st.sampled_from(["fr", "de"]))
        if draw(st.booleans()):
            fields["x-tenant"] = draw(TEXT)
    if route == "mine":
        fields["authorization"] = bearer(draw(NAMES), draw(st.sampled_from(["a", "a b"])))
    return {
        "route": route,
        "method": draw(st.sampled_from(methods)),
        "k": draw(st.text(st.sampled_from("abcxyz019-_"), min_size=1, max_size=6)),
        "query": draw(st.sampled_from(["", "page=2", "q=a+b", "page=1&x=y"])),
        "host": draw(st.sampled_from(["gw.test", "other.test"])),
        "fields": fields,
    }


def event(key: dict[str, Any], own: dict[str, Any], unique: int) -> dict[str, Any]:
    e = copy.deepcopy(EVENT)
    path = f"/v1/{key['route']}/{key['k']}-{unique}"
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["rawQueryString"] = key["query"]
    e["requestContext"]["http"]["method"] = key["method"]
    e["requestContext"]["http"]["sourceIp"] = own["source"]
    e.pop("queryStringParameters", None)
    headers = {"host": key["host"], **own["fields"], **key["fields"]}
    cookie = headers.pop("cookie", None)
    e.pop("cookies", None)
    if cookie:
        e["cookies"] = [cookie]
    e["headers"] = headers
    e["body"] = base64.b64encode(own["body"]).decode()
    e["isBase64Encoded"] = True
    return e


def answer(result: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    own = ("x-request-id", "tollway-cache")  # the request's id, and whether it was a hit
    fields = {k: v for k, v in result.get("headers", {}).items() if k not in own}
    raw = result.get("body", "")
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
    return result["statusCode"], fields, body


def test_a_cached_answer_is_a_function_of_its_key_alone(containers: Containers) -> None:
    unique = itertools.count()
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def pair(data: st.DataObject) -> None:
        key = data.draw(keyed())
        first, second = data.draw(private(key["route"])), data.draw(private(key["route"]))
        n = next(unique)  # a key no earlier example filled
        where = f"{key!r}: {first!r} then {second!r}"

        containers.backend.seen.clear()
        filled = containers.a(event(key, first, n), Context())
        fill_a = list(containers.backend.seen)
        containers.backend.seen.clear()
        served = containers.a(event(key, second, n), Context())
        assert containers.backend.seen == [] or served["headers"].get("tollway-cache") != "hit", where
        containers.backend.seen.clear()
        fresh = containers.b(event(key, second, n), Context())
        fill_b = list(containers.backend.seen)

        assert filled["statusCode"] == 200, f"{where}: {filled.get('body')}"
        assert sorted(fill_a, key=repr) == sorted(fill_b, key=repr), f"the fills differ: {where}"
        assert answer(served) == answer(fresh), f"a cached answer depends on more than its key: {where}"
        outcomes[served["headers"].get("tollway-cache", "composed")] += 1

    pair()
    # The property was exercised on stored answers, not only on misses.
    assert outcomes["hit"] > 0, outcomes
