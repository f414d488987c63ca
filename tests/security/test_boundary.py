"""Nothing a caller sends reaches a backend unless the route allows it (issue 12).

Each class runs through both entry points, uvicorn on a socket and the Lambda handler with
an API Gateway v2 event, and asserts what the backend *received*, not only the answer.
"""

from __future__ import annotations

import gzip
import tracemalloc

import pytest

from .boundary import OTHER_ISSUER, SECRET_TEXT, Gateway, build, token


@pytest.fixture(params=["uvicorn", "lambda"])
def gw(request, aws, serve, tmp_path, monkeypatch):
    yield from build(request.param, aws, serve, tmp_path, monkeypatch)


def assert_problem(answer, status: int) -> None:
    assert answer.status == status, answer.body[:300]
    assert answer.header("content-type") == "application/problem+json"


# ---- 1. headers toward backends ------------------------------------------------------

GATEWAY_FIELDS = [
    ("X-Tollway-Consumer", "admin"),
    ("X-Tollway-Scopes", "admin:all"),
    ("X-Tollway-Plan", "enterprise"),
    ("X-Tollway-Anything-New", "1"),
    ("X-Forwarded-For", "10.0.0.1"),
    ("X-Forwarded-Host", "internal.example"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Forwarded-Server", "internal"),
    ("X-Forwarded-Ssl", "on"),
    ("Forwarded", "for=10.0.0.1;host=internal"),
    ("X_Tollway_Consumer", "admin"),
    ("X_Forwarded_For", "10.0.0.1"),
    ("x_api_key", "smuggled"),
]
# Fields a backend, a framework or a proxy behind the gateway reads as the request's method,
# its URL or the caller's address: only the gateway speaks to those (issue 18).
OVERRIDES = [
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Real-IP", "10.0.0.1"),
    ("True-Client-IP", "10.0.0.1"),
    ("X-Client-IP", "10.0.0.1"),
    ("X-Cluster-Client-IP", "10.0.0.1"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X-Original-URI", "/admin"),
]


def test_a_caller_never_sets_a_field_in_the_gateways_namespaces(gw: Gateway) -> None:
    answer = gw.send("GET", "/v1/echo/x", [*GATEWAY_FIELDS, ("X-Custom", "kept")])
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    names = seen.names()
    assert not [n for n in names if "_" in n]
    assert not [n for n in names if n.startswith("x-tollway-")]
    assert "forwarded" not in names
    assert seen.header("x-custom") == ["kept"]
    # The gateway's own X-Forwarded-* fields, once each, with its own values.
    forwarded = sorted(n for n in names if n.startswith("x-forwarded-"))
    assert forwarded == ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]
    assert "10.0.0.1" not in seen.header("x-forwarded-for")[0]
    assert seen.header("x-forwarded-host") != ["internal.example"]


def test_a_caller_cannot_override_the_method_url_or_address_a_backend_reads(gw: Gateway) -> None:
    answer = gw.send("GET", "/v1/echo/x", [*OVERRIDES, ("X-Custom", "kept")])
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    assert not {n.lower() for n, _ in OVERRIDES} & set(seen.names())
    assert seen.header("x-custom") == ["kept"]
    assert seen.method == "GET"


@pytest.mark.parametrize(
    "host", ["evil.example", "user@evil.example", "evil.example, good.example", "evil example", "a:b:c"]
)
def test_a_request_names_one_host_or_is_refused(gw: Gateway, host: str) -> None:
    """A second Host field (or, on Lambda, the list API Gateway joins them into) or one
    that is not host[:port] is a 400 before anything else: the gateway's cache key and the
    backend reading X-Forwarded-Host would each pick their own host out of it (RFC 9112
    §3.2; found attacking issue 18's fixes: `a.example,evil.example` was forwarded)."""
    answer = gw.send("GET", "/v1/echo/x", [("Host", host)])
    assert_problem(answer, 400)
    assert answer.header("x-request-id")
    assert gw.backend.seen == []


def test_a_host_with_a_port_or_an_ip_literal_is_forwarded(gw: Gateway) -> None:
    for host in ("gw.example:8443", "[2001:db8::1]:443", "10.0.0.1"):
        gw.backend.seen.clear()
        answer = gw.send("GET", "/v1/echo/x", [], host=host)
        assert answer.status == 200, answer.body
        (seen,) = gw.backend.seen
        assert seen.header("x-forwarded-host") == [host]


def test_an_authenticated_caller_cannot_add_to_its_own_identity(gw: Gateway, capsys) -> None:
    key = gw.key(capsys, "acme")
    forged = [("X-Tollway-Consumer", "admin"), ("X_Tollway_Consumer", "admin"), ("x-tollway-scopes", "a")]
    answer = gw.send("GET", "/v1/who", [("x-api-key", key), *forged])
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    assert seen.header("x-tollway-consumer") == ["acme"]
    assert seen.header("x-tollway-scopes") == [""]
    assert not [n for n in seen.names() if "_" in n]


# ---- 2. path parameters confine the caller ---------------------------------------------

ESCAPES = [
    "..%2Fsecret.txt",
    "%2e%2e%2fsecret.txt",
    "%2E%2E%2Fsecret.txt",
    "..%5Csecret.txt",
    "%2e%2e%5csecret.txt",
    "%252e%252e%252fsecret.txt",
    "..%252Fsecret.txt",
    "%2e%2e",
    "..%3Bx",
    "%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.txt",  # fullwidth ../, which NFKC folds
    "docs%2F..%2F..%2Fsecret.txt",
]


def test_the_file_server_really_serves_the_public_folder(gw: Gateway) -> None:
    assert gw.send("GET", "/v1/docs/readme.txt").body == b"public text"
    assert gw.send("GET", "/v1/tree/docs/a%20b.txt").body == b"nested public text"


@pytest.mark.parametrize("value", ESCAPES)
def test_a_path_value_never_leaves_its_segment(gw: Gateway, value: str) -> None:
    answer = gw.send("GET", f"/v1/docs/{value}")
    assert SECRET_TEXT not in answer.body
    assert answer.status in (400, 404), answer.status
    if answer.status == 400:
        assert_problem(answer, 400)
    assert gw.files.paths == []  # refused before any backend call


@pytest.mark.parametrize("value", [*ESCAPES, "docs/../../secret.txt", "docs/..%2F..%2Fsecret.txt"])
def test_a_greedy_value_spans_segments_but_never_climbs(gw: Gateway, value: str) -> None:
    answer = gw.send("GET", f"/v1/tree/{value}")
    assert SECRET_TEXT not in answer.body
    assert answer.status in (400, 404), answer.status
    assert gw.files.paths == []


@pytest.mark.parametrize("spelling", ["admin", "%61dmin", "adm%69n", "%61%64%6d%69%6e", "%61%64%6D%69%6E"])
def test_a_protected_literal_is_not_reached_through_a_public_parameter(gw: Gateway, spelling: str) -> None:
    """`/v1/items/admin` needs a credential, `/v1/items/{id}` does not, and both reach the
    backend's `/items/admin`: every spelling of `admin` is the literal route's (issue 18)."""
    answer = gw.send("GET", f"/v1/items/{spelling}")
    assert_problem(answer, 401)
    assert gw.backend.seen == []


@pytest.mark.parametrize("spelling", ["admin;x", "admin%3Bx", "admin%3bx", "admin;", "admin;jsessionid=1"])
def test_a_path_value_reaches_the_backend_as_data_never_as_path_parameters(
    gw: Gateway, spelling: str
) -> None:
    """Tomcat, Jetty and Spring strip `;params` from a segment before routing, so a backend
    that read `/echo/items/admin;x` would serve the protected `/echo/items/admin` to the
    public `{id}` route. The gateway encodes a value's `;` as `%3B`, and its HTTP client must
    send that as built: aiohttp's URL type turned `%3B` back into `;` (found attacking
    issue 18's fixes)."""
    answer = gw.send("GET", f"/v1/items/{spelling}")
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    value = spelling.replace("%3b", ";").replace("%3B", ";")
    assert seen.raw_path == "/echo/items/" + value.replace(";", "%3B").replace("=", "%3D")
    # What a servlet container routes on: the raw path, each segment cut at its first `;`.
    assert [s.split(";")[0] for s in seen.raw_path.split("/")] != ["", "echo", "items", "admin"]


def test_a_parameter_that_is_not_the_literal_still_reaches_its_route(gw: Gateway) -> None:
    assert gw.send("GET", "/v1/items/%41dmin").status == 200  # `Admin`: another value
    assert gw.send("GET", "/v1/items/a%2Fb").status == 400  # one segment holding `/`
    assert [s.raw_path for s in gw.backend.seen] == ["/echo/items/Admin"]


# ---- 3. validated means forwarded ------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "limit=5&limit=100000",
        "limit=5&li%6Dit=100000",
        "limit=5&LIMIT=100000",
        "LIMIT=100000",
        "limit=100000",
    ],
)
def test_a_validated_parameter_cannot_pass_with_one_value_and_reach_with_another(
    gw: Gateway, query: str
) -> None:
    answer = gw.send("GET", f"/v1/search?{query}")
    assert_problem(answer, 400)
    assert gw.backend.seen == []


def test_the_backend_reads_the_query_as_validated(gw: Gateway) -> None:
    answer = gw.send("GET", "/v1/search?limit=%35&q=a+b;limit=99&scope=private")
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    # Canonical: one limit, `;` can no longer split, the pinned scope is the route's alone.
    assert seen.query == "scope=public&limit=5&q=a%20b%3Blimit%3D99"


def test_the_backend_reads_the_callers_query_and_path_value_as_the_gateway_built_them(gw: Gateway) -> None:
    """Escapes the gateway keeps are sent as escapes: the HTTP client re-spelled `%2F`,
    `%40` or `%3D` as their characters and `%zz` as `%25zz`."""
    answer = gw.send("GET", "/v1/items/a%40b%3Dc%24?a=%3B%26%3D%2F&b=%zz")
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    assert (seen.raw_path, seen.query) == ("/echo/items/a%40b%3Dc%24", "a=%3B%26%3D%2F&b=%zz")


@pytest.mark.parametrize("spelling", ["fixed=2", "FIXED=2", "fi%78ed=2", "fixed"])
def test_a_pinned_query_value_cannot_be_overridden(gw: Gateway, spelling: str) -> None:
    answer = gw.send("GET", f"/v1/echo/x?{spelling}&other=1")
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    assert seen.query == "fixed=1&other=1"


def test_a_pinned_query_value_cannot_be_overridden_after_a_semicolon(gw: Gateway) -> None:
    """Some backends split a query on `;` too: the caller's `;` reaches them as data."""
    answer = gw.send("GET", "/v1/echo/x?a=1;fixed=evil&b=2;FIXED=evil")
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    assert seen.query == "fixed=1&a=1%3Bfixed=evil&b=2%3BFIXED=evil"


@pytest.mark.parametrize(
    "query",
    [
        "ratio=nan",
        "ratio=NaN",
        "ratio=inf",
        "ratio=-inf",
        "ratio=Infinity",
        "ratio=1e999",
        "ratio=%20.5",
        "ratio=0.5%0A",
        "ratio=0_5",
        "limit=1_0",
        "limit=%2B5",
        "limit=05",
        "limit=%D9%A5",  # ARABIC-INDIC DIGIT FIVE, which Python's int() reads as 5
    ],
)
def test_a_number_is_read_as_json_reads_it(gw: Gateway, query: str) -> None:
    answer = gw.send("GET", f"/v1/ratio?{query}")
    assert_problem(answer, 400)
    assert gw.backend.seen == []


def test_a_valid_number_reaches_the_backend(gw: Gateway) -> None:
    assert gw.send("GET", "/v1/ratio?ratio=0.25&limit=-3").status == 200
    assert gw.send("GET", "/v1/ratio?ratio=1E-1&limit=0").status == 200
    assert [s.query for s in gw.backend.seen] == ["ratio=0.25&limit=-3", "ratio=1E-1&limit=0"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 5000, "amount": 5}',
        b'{"amount": 5, "amount": 5}',
        b'{"lines": [{"sku": "a", "sku": "b"}], "amount": 1}',
        b'{"amount": 5, "\\u0061mount": 5000}',
    ],
)
def test_a_validated_body_with_a_repeated_member_is_refused(gw: Gateway, body: bytes) -> None:
    """Backends disagree on which of two members they read (first, last, an error)."""
    answer = gw.send("POST", "/v1/orders", [("content-type", "application/json")], body)
    assert_problem(answer, 400)
    assert gw.backend.seen == []


def test_a_validated_body_without_repeats_is_forwarded_as_sent(gw: Gateway) -> None:
    body = b'{"amount": 5, "lines": [{"sku": "a"}, {"sku": "a"}]}'
    assert gw.send("POST", "/v1/orders", [("content-type", "application/json")], body).status == 200
    (seen,) = gw.backend.seen
    assert seen.body == body


@pytest.mark.parametrize(
    "fields",
    [
        [("content-type", "application/x-www-form-urlencoded")],
        [("content-type", "multipart/form-data; boundary=x")],
        [("content-type", "text/plain")],
        [("content-type", "application/json; charset=utf-16")],
        [("content-type", "application/json"), ("content-encoding", "gzip")],
        [("content-type", "application/json"), ("content-encoding", "br")],
        [],
    ],
)
def test_a_validated_body_reaches_the_backend_as_the_json_the_schema_saw(gw: Gateway, fields) -> None:
    """The schema read the body as JSON; a backend reads it as its Content-Type (and
    Content-Encoding) says. Forwarded as `application/x-www-form-urlencoded`, the JSON
    `{"amount": 5, "note": "&amount=-1000"}` is `amount=-1000` to a form parser (Flask's
    request.form, Express's urlencoded, PHP's $_POST): the body the schema checked reached the
    backend and the backend read another. A validated body goes with `application/json`
    and without a content coding, as the bytes the schema read."""
    body = b'{"amount": 5, "note": "&amount=-1000&x="}'
    assert gw.send("POST", "/v1/orders", fields, body).status == 200
    (seen,) = gw.backend.seen
    assert seen.body == body
    assert seen.header("content-type") == ["application/json"], seen.headers
    assert seen.header("content-encoding") == [], seen.headers


def test_a_validated_json_body_keeps_its_json_media_type(gw: Gateway) -> None:
    body = b'{"amount": 5}'
    for media in ("application/json", "application/merge-patch+json", "application/json; charset=utf-8"):
        gw.backend.seen.clear()
        assert gw.send("POST", "/v1/orders", [("content-type", media)], body).status == 200
        (seen,) = gw.backend.seen
        assert seen.header("content-type") == [media]


@pytest.mark.parametrize(
    "media",
    [
        "application/x-www-form-urlencoded, +json",
        "application/x-www-form-urlencoded +json",
        "application/x-www-form-urlencoded\t+json",
        "multipart/form-data,+json; boundary=x",
        "application/x-www-form-urlencoded,application/json",
    ],
)
def test_a_validated_body_keeps_no_media_type_a_backend_reads_as_a_form(gw: Gateway, media: str) -> None:
    """A caller's JSON media type is kept only as one media type: PHP reads a Content-Type up to
    its first `;`, `,` or space (`application/x-www-form-urlencoded, +json` fills $_POST from the
    body), as werkzeug before 2.3 did up to a comma or a space (Flask's request.form), while the
    gateway took the whole of it for a `+json` type and forwarded it as the caller sent it."""
    body = b'{"amount": 5, "note": "&amount=-1000&x="}'
    assert gw.send("POST", "/v1/orders", [("content-type", media)], body).status == 200
    (seen,) = gw.backend.seen
    assert seen.body == body
    assert seen.header("content-type") == ["application/json"], seen.headers


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 5, "AMOUNT": 5000}',
        b'{"AMOUNT": 5000}',
        b'{"Amount": 5000}',
        b'{"amount": 5, "lines": [], "line\\u017f": 5}',
        b'{"amount": 5, "AMOUNT": 5}',
    ],
)
def test_a_validated_member_in_another_case_is_refused(gw: Gateway, body: bytes) -> None:
    """Go's encoding/json (and Jackson with case-insensitive properties) reads a member into
    the field whose name it matches in any case, Unicode's simple folding included (`line\u017f`
    is `lines`), the last one winning: `{"amount": 5, "AMOUNT": 5000}` passed the schema's
    maximum of 1000 (its `AMOUNT` is another name to it) and is 5000 to such a backend, as a
    lone `{"AMOUNT": 5000}` is. As with a query, a declared name goes spelled exactly so, once."""
    answer = gw.send("POST", "/v1/orders", [("content-type", "application/json")], body)
    assert_problem(answer, 400)
    assert gw.backend.seen == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"am-ount": 5000}',
        b'{"amount": 5, "-AMOUNT": 5000}',
        b'{"amount": 5, "Li-Nes": 5}',
        b'{"amount": 5, "l\xc4\xb1nes": 5}',
        b'{"amount": 5, "L\xc4\xb0NES": 5}',
    ],
)
def test_a_validated_member_spelled_with_dashes_or_a_turkish_i_is_refused(gw: Gateway, body: bytes) -> None:
    """Lenient readers fold more than case and underscores: Go's json v2 with `case:ignore`
    (`MatchCaseInsensitiveNames`) ignores dashes as well, and ActiveSupport's `underscore` (Rails'
    `deep_transform_keys`, OliveBranch) makes `display-name` `display_name`; Java's
    `equalsIgnoreCase` (and Jackson's case-insensitive mode on a Turkish-locale JVM) takes dotless
    `\u0131` and dotted `\u0130` for `i`. `{"am-ount": 5000}` passed a maximum of 1000 and
    `{"l\u0131nes": 5}` an array type, unchecked, and reached the backend."""
    answer = gw.send("POST", "/v1/orders", [("content-type", "application/json")], body)
    assert_problem(answer, 400)
    assert gw.backend.seen == []


@pytest.mark.parametrize(
    "body",
    [b'{"amount": 5, "lines": [{"sku": "a", "SKU": "b"}]}', b'{"amount": 5, "tags": {"Env": 1, "env": 2}}'],
)
def test_names_the_schema_does_not_declare_may_differ_in_case_only(gw: Gateway, body: bytes) -> None:
    """A free-form map's keys (`{"Env": 1, "env": 2}`) are not the schema's members: it checks
    neither value, so a backend reading either gets nothing the schema was meant to stop; the
    first version of the case rule refused them at every level, breaking such clients."""
    assert gw.send("POST", "/v1/orders", [("content-type", "application/json")], body).status == 200
    (seen,) = gw.backend.seen
    assert seen.body == body


@pytest.mark.parametrize(
    "body",
    [
        b'{"AMOUNT": 5000}',
        b'{"amount": 5, "lines": [{"Amount": 5000}]}',
        b'{"amount": 5, "extra": {"AMOUNT": 5000}}',
    ],
)
def test_a_member_in_another_case_is_refused_whatever_way_the_schema_declares_it(
    gw: Gateway, body: bytes
) -> None:
    """A schema declares its properties through `allOf`, `anyOf`, `$ref`, `additionalProperties`
    as well as `properties`: `{"AMOUNT": 5000}` passed a maximum of 1000 declared in a `$ref`'d
    definition under `allOf` (the check followed `properties` and `items` only) and reached the
    backend, whose case-insensitive decoder reads amount 5000."""
    answer = gw.send("POST", "/v1/orders/refs", [("content-type", "application/json")], body)
    assert_problem(answer, 400)
    assert gw.backend.seen == []
    exact = b'{"amount": 5, "lines": [{"amount": 7}], "extra": {"amount": 9}}'
    assert gw.send("POST", "/v1/orders/refs", [("content-type", "application/json")], exact).status == 200
    (seen,) = gw.backend.seen
    assert seen.body == exact


@pytest.mark.parametrize("body", [b'{"amount": 5, "ADMIN": true}', b'{"Admin": true}'])
def test_a_member_the_schema_forbids_is_refused_in_another_case(gw: Gateway, body: bytes) -> None:
    """`{"not": {"required": ["admin"]}}` forbids a member it never declares in `properties`:
    `ADMIN` passed it (the spelling check looked at `properties` only) and is `admin` to a
    backend that reads names in any case."""
    answer = gw.send("POST", "/v1/orders/forbids", [("content-type", "application/json")], body)
    assert_problem(answer, 400)
    assert gw.backend.seen == []
    assert gw.send("POST", "/v1/orders/forbids", [], b'{"amount": 5, "note": "x"}').status == 200


@pytest.mark.parametrize("depth", [201, 1000, 1024])
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_a_validated_body_nested_too_deep_is_a_400_not_a_500(gw: Gateway, depth: int, opening: bytes) -> None:
    """orjson reads 1,024 levels; the repeat check's reader (json) recursed once per level, and a
    2 KB body of 1,000 made a RecursionError: a 500 on any validated route, for anyone."""
    closing = b"]" if opening == b"[" else b"}"
    body = opening * depth + (b"1" if opening != b"[" else b"") + closing * depth
    answer = gw.send("POST", "/v1/orders", [("content-type", "application/json")], body)
    assert_problem(answer, 400)
    assert gw.backend.seen == []


# ---- 4. identities are namespaced ------------------------------------------------------


def test_a_token_whose_subject_is_an_api_key_consumer_spends_its_own_quota(gw: Gateway, capsys) -> None:
    key = gw.key(capsys, "acme")
    for _ in range(2):  # the plan's whole daily quota
        assert gw.send("GET", "/v1/who", [("x-api-key", key)]).status == 200
    assert gw.send("GET", "/v1/who", [("x-api-key", key)]).status == 429
    for issuer in (None, OTHER_ISSUER):
        bearer = token("acme") if issuer is None else token("acme", issuer)
        answer = gw.send("GET", "/v1/who", [("authorization", f"Bearer {bearer}")])
        assert answer.status == 200, answer.body
    consumers = [s.header("x-tollway-consumer")[0] for s in gw.backend.seen]
    assert consumers == [
        "acme",
        "acme",
        "https://login.boundary.test/|acme",
        "https://partner.boundary.test/|acme",
    ]


# ---- 5. claims are values, not header text ---------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": ["read write"]},
        {"scope": ["read", "x\r\nx-tollway-consumer: admin"]},
        {"scope": "read\twrite"},
        {"sub": "acme\r\nx-injected: 1"},
        {"sub": "acme\x00"},
        {"sub": "acme\x7f"},
        {"sub": "acme\u2028x-injected: 1"},
        {"sub": "acme\u2029"},
    ],
)
def test_a_malformed_claim_is_401_before_any_quota_is_spent(gw: Gateway, claims) -> None:
    claims = dict(claims)
    sub = claims.pop("sub", "claims-test")
    for _ in range(3):  # over the plan's quota of 2, were any of them admitted
        answer = gw.send("GET", "/v1/who", [("authorization", f"Bearer {token(sub, **claims)}")])
        assert_problem(answer, 401)
        assert answer.header("ratelimit") is None
    assert gw.backend.seen == []
    good = gw.send("GET", "/v1/who", [("authorization", f"Bearer {token('claims-test')}")])
    assert good.status == 200


def test_forwarded_scopes_are_unambiguous(gw: Gateway) -> None:
    bearer = token("scoped", scope=["b:read", "a:write"])
    assert gw.send("GET", "/v1/who", [("authorization", f"Bearer {bearer}")]).status == 200
    (seen,) = gw.backend.seen
    assert seen.header("x-tollway-scopes") == ["a:write b:read"]


def test_a_non_ascii_subject_reaches_the_backend_as_its_utf8_bytes(gw: Gateway) -> None:
    bearer = token("jos\u00e9")
    answer = gw.send("GET", "/v1/who", [("authorization", f"Bearer {bearer}")])
    assert answer.status == 200, answer.body
    (seen,) = gw.backend.seen
    value = seen.header("x-tollway-consumer")[0].encode("latin-1").decode()
    assert value == "https://login.boundary.test/|jos\u00e9"


# ---- 7. backend answers ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["vary", "silent"])
def test_a_cached_gzip_answer_never_reaches_a_caller_who_did_not_accept_gzip(gw: Gateway, mode: str) -> None:
    first = gw.send("GET", f"/v1/cached/{mode}", [("accept-encoding", "gzip")])
    assert first.status == 200 and first.header("content-encoding") == "gzip"
    assert gzip.decompress(first.body) == b'{"enc":"gzip"}'
    plain = gw.send("GET", f"/v1/cached/{mode}", [("accept-encoding", "identity")])
    assert plain.status == 200, plain.body
    assert plain.header("content-encoding") is None
    assert plain.body == b'{"enc":"identity"}'
    bare = gw.send("GET", f"/v1/cached/{mode}")
    assert bare.header("content-encoding") is None and bare.body == b'{"enc":"identity"}'
    # The same negotiation is still a hit: Vary narrows the cache, it does not disable it.
    again = gw.send("GET", f"/v1/cached/{mode}")
    assert again.header("tollway-cache") == "hit"


# What one caller sends that is not in a cache key: it must never reach another caller.
PRIVATE = [
    ("Cookie", "session=SECRET"),
    ("X-Poison", "evil"),
    ("Accept-Language", "fr"),
    ("X-Forwarded-For", "10.9.9.9"),
]


@pytest.mark.parametrize("route", ["shared", "composed"])
def test_a_shared_cache_never_serves_what_one_caller_sent_to_another(gw: Gateway, route: str) -> None:
    """A cached route forwards only what its key covers (issue 18): no cookie, no other
    caller field, no body on a GET, not the caller's address."""
    first = gw.send("GET", f"/v1/{route}/k1", PRIVATE, b"secret-body")
    assert first.status == 200, first.body
    second = gw.send("GET", f"/v1/{route}/k1")
    assert second.status == 200
    for answer in (first, second):
        for secret in (b"SECRET", b"evil", b"fr", b"secret-body", b"10.9.9.9"):
            assert secret not in answer.body
    assert second.body == first.body  # a hit: the one answer its key stands for
    (seen,) = gw.backend.seen
    names = seen.names()
    assert "cookie" not in names and "x-poison" not in names and "accept-language" not in names
    assert "x-forwarded-for" not in names  # a shared answer does not depend on who asked
    assert seen.body == b""


@pytest.mark.parametrize("route", ["shared", "composed"])
def test_a_shared_cache_never_serves_a_callers_trace_state(gw: Gateway, route: str) -> None:
    """`tracestate` is free text a caller chooses (any printable ASCII, 512 bytes): a fill
    joins the caller's trace by its ids alone, so a backend that reflects what it receives
    cannot store one caller's text for the next (found attacking issue 18's fixes)."""
    sent = [
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tracestate", "evil=<script>alert(1)</script>"),
    ]
    first = gw.send("GET", f"/v1/{route}/k1", sent)
    second = gw.send("GET", f"/v1/{route}/k1")
    assert first.status == second.status == 200, first.body
    assert b"<script>" not in first.body and b"<script>" not in second.body
    (seen,) = gw.backend.seen
    assert seen.header("tracestate") == []
    # Still one trace: the fill carries the caller's trace id, with the gateway's span.
    assert seen.header("traceparent")[0].startswith("00-0af7651916cd43dd8448eb211c80319c-")


@pytest.mark.parametrize("route", ["shared", "composed"])
def test_a_shared_cache_fill_never_carries_a_callers_request_id(gw: Gateway, route: str) -> None:
    """A caller's `X-Request-Id` is text it chose (128 characters of a URL's alphabet), not in
    the entry's key: a fill carries an id of the gateway's own, or a backend that writes its
    request id into its answer would store one caller's text (a link, say) for every caller
    of the entry (found attacking the `tracestate` fix: the same class). The caller's answer
    keeps the id it sent; the fill joins its trace by `traceparent`."""
    chosen = "https://evil.example/login"
    first = gw.send("GET", f"/v1/{route}/k1", [("X-Request-Id", chosen)])
    assert first.status == 200, first.body
    assert first.header("x-request-id") == chosen
    (seen,) = gw.backend.seen
    (sent,) = seen.header("x-request-id")
    assert sent != chosen and "evil" not in sent


def test_a_field_the_route_names_in_vary_is_forwarded_and_keyed(gw: Gateway) -> None:
    fr = gw.send("GET", "/v1/varies/k", [("Accept-Language", "fr"), ("X-Poison", "evil")])
    de = gw.send("GET", "/v1/varies/k", [("Accept-Language", "de")])
    again = gw.send("GET", "/v1/varies/k", [("Accept-Language", "fr")])
    assert fr.json()["headers"]["accept-language"] == "fr"
    assert de.json()["headers"]["accept-language"] == "de"
    assert again.header("tollway-cache") == "hit" and again.body == fr.body
    assert b"evil" not in fr.body
    assert len(gw.backend.seen) == 2


def test_a_field_the_connection_header_names_is_neither_forwarded_nor_keyed(gw: Gateway) -> None:
    """`Connection: accept-language` makes the caller's Accept-Language hop-by-hop: the fill
    went without it, and its answer was stored under the caller's `fr` for every French
    caller (found attacking the caches' fixes: the key read the field the fill left out).
    Such a field is absent for the key too."""
    poisoned = gw.send("GET", "/v1/varies/k", [("Accept-Language", "fr"), ("Connection", "accept-language")])
    french = gw.send("GET", "/v1/varies/k", [("Accept-Language", "fr")])
    assert poisoned.status == french.status == 200, poisoned.body
    assert "accept-language" not in poisoned.json()["headers"]
    assert french.json()["headers"]["accept-language"] == "fr"
    assert french.header("tollway-cache") == "miss"
    assert [s.header("accept-language") for s in gw.backend.seen] == [[], ["fr"]]


def test_a_per_consumer_cache_tells_the_backend_only_who_is_asking(gw: Gateway, capsys) -> None:
    key = gw.key(capsys, "acme")
    first = gw.send("GET", "/v1/mine/k", [("x-api-key", key), *PRIVATE])
    assert first.status == 200, first.body
    reflected = first.json()["headers"]
    assert reflected["x-tollway-consumer"] == "acme" and "x-tollway-scopes" in reflected
    assert not {"cookie", "x-poison", "x-forwarded-for"} & set(reflected)
    other = gw.send("GET", "/v1/mine/k", [("authorization", f"Bearer {token('other')}")])
    assert other.json()["headers"]["x-tollway-consumer"] == "https://login.boundary.test/|other"


def test_a_proxied_4xx_passes_as_documented(gw: Gateway) -> None:
    answer = gw.send("GET", "/v1/deny")
    assert answer.status == 401
    # The backend's own answer: its body, its cookie and its own fields...
    assert answer.json() == {"error": "session expired"}
    assert answer.header("set-cookie") == "session=; Max-Age=0; Path=/"
    assert answer.header("www-authenticate") == 'Bearer realm="backend"'
    assert answer.header("x-backend-reason") == "expired"
    # ...but never what describes the hosts and software behind the gateway, nor a field
    # in the gateway's own namespace.
    assert answer.header("x-powered-by") is None and answer.header("via") is None
    assert "ip-10-0-3-7" not in (answer.header("server") or "")
    assert answer.header("tollway-partial") is None


# ---- 8. values taken from a backend's answer -------------------------------------------


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://app.example"])
def test_a_routes_cors_policy_is_the_only_word_on_cors(gw: Gateway, origin: str) -> None:
    """On a route with a `cors:` policy the gateway decides who may read an answer: a
    backend's own `Access-Control-*` fields (one that reflects any origin, with credentials)
    never reach the caller beside or instead of the gateway's (found attacking issue 18's
    fixes: `Origin: https://evil.example` was granted, with credentials)."""
    answer = gw.send("GET", "/v1/cors", [("Origin", origin)])
    assert answer.status == 200, answer.body
    granted = [v for k, v in answer.headers if k == "access-control-allow-origin"]
    assert granted == (["https://app.example"] if origin == "https://app.example" else [])
    credentials = [v for k, v in answer.headers if k == "access-control-allow-credentials"]
    assert credentials == (["true"] if granted else [])


def test_a_routes_cors_policy_is_the_only_word_without_an_origin_too(gw: Gateway) -> None:
    """A request that names no Origin (a top-level navigation, a fetch a cache then
    answers for a script) gets no backend grant either: a browser's or a CDN's cache would
    hand `Access-Control-Allow-Origin: *` and credentials, stored from it, to any origin's
    script (found attacking the fix above: only requests with an Origin were cleaned)."""
    answer = gw.send("GET", "/v1/cors")
    assert answer.status == 200, answer.body
    assert [k for k, _ in answer.headers if k.startswith("access-control-")] == []
    assert "origin" in (answer.header("vary") or "").lower()


def test_an_empty_value_from_a_backend_fails_like_a_missing_one(gw: Gateway) -> None:
    """`{"id": ""}` must not turn `/items/{user.id}` into `/items/`, the whole collection."""
    answer = gw.send("GET", "/v1/chain/empty")
    assert_problem(answer, 502)
    assert [s.raw_path for s in gw.backend.seen] == ["/json/empty"]
    good = gw.send("GET", "/v1/chain/user")
    assert good.status == 200, good.body
    assert sorted(s.raw_path for s in gw.backend.seen[1:]) == ["/echo/items/u1", "/echo/owned", "/json/user"]
    assert [s.query for s in gw.backend.seen if s.raw_path == "/echo/owned"] == ["owner=u1"]


def test_integers_beyond_64_bits_are_composed_exactly(gw: Gateway) -> None:
    answer = gw.send("GET", "/v1/chain/big")
    assert answer.status == 200, answer.body
    user = answer.body.split(b'"user":', 1)[1]
    assert b'"n":18446744073709551616' in user
    assert b'"neg":-9223372036854775809' in user
    assert b'"max":18446744073709551615' in user
    assert b'"deep":[{"n":100000000000000000000000000001}]' in user
    assert b'"f":1.5' in user


def test_integers_beyond_64_bits_reach_the_next_backend_exactly(gw: Gateway) -> None:
    answer = gw.send("GET", "/v1/relay/big")
    assert answer.status == 200, answer.body
    sent = [s for s in gw.backend.seen if s.raw_path == "/echo/relay"]
    assert [s.body for s in sent] == [b'{"n":18446744073709551616,"s":"n=18446744073709551616"}']


def test_a_validated_body_of_a_long_name_over_many_members_costs_no_more_than_its_size(gw: Gateway) -> None:
    """The spelling check made the JSON pointer of every member as it went, a string of the whole
    path from the top: a member named by 100 KB of text holding an object of 8,000 members
    (`{"k0000001": [], ...}`, in a map the schema declares through `additionalProperties`) made
    8,000 strings of 100 KB each, kept till visited: 800 MB from a 200 KB body (a 1 MB body, the
    default limit, took 20 GB), for anyone who may call the route."""
    count = 8_000
    inner = b"{" + b",".join(b'"k%07d": []' % i for i in range(count)) + b"}"
    body = b'{"amount": 5, "' + b"x" * 100_000 + b'": ' + inner + b"}"
    tracemalloc.start()
    try:
        answer = gw.send("POST", "/v1/orders/refs", [("content-type", "application/json")], body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status == 200, answer.body[:300]
    (seen,) = gw.backend.seen
    assert seen.body == body
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB"
