"""`tollway routes check`: every problem, with its file, line and exact message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tollway.cli import main
from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError

GATEWAY = """\
stages:
  dev: {services: {users: "http://127.0.0.1:9101", orders: "http://127.0.0.1:9102"}}
  prod: {services: {users: "https://users.internal.example.com"}}
defaults: {timeout_ms: 3000, max_body_bytes: 1048576}
"""
PLANS = """\
plans:
  free: {rate: {limit: 5, per: second, burst: 10}, quota: {limit: 1000, per: day}, price: {per_1000_units: 0}}
"""


def write_infra(root: Path, routes: dict[str, str], gateway: str = GATEWAY, plans: str = PLANS) -> Path:
    infra = root / "infra"
    (infra / "routes").mkdir(parents=True)
    (infra / "gateway.yaml").write_text(gateway)
    (infra / "plans.yaml").write_text(plans)
    for name, text in routes.items():
        (infra / "routes" / name).write_text(textwrap.dedent(text))
    return infra


def problems(infra: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        compile_infra(infra, "dev", {}, infra.parent)
    return [str(p) for p in info.value.problems]


GOOD_ROUTE = """\
team: profiles
routes:
  - id: profile.get
    path: /v1/profile/{user_id}
    methods: [GET]
    auth: [api_key, jwt]
    compose: group
    backends:
      - name: user
        service: users
        path: /users/{user_id}
      - name: orders
        service: orders
        path: /orders
        query: {user: "{user.id}"}
        required: false
"""


def test_valid_config_compiles(tmp_path: Path) -> None:
    config = compile_infra(write_infra(tmp_path, {"profiles.yaml": GOOD_ROUTE}), "dev", {})
    (route,) = config.routes
    assert route.id == "profile.get"
    assert [b.name for b in route.backends] == ["user", "orders"]
    assert route.backends[1].depends_on == {"user"}
    assert route.methods == {"GET", "HEAD"}


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    infra = write_infra(
        tmp_path,
        {
            "profiles.yaml": """\
            team: profile
            routes:
              - id: a
                path: /a/{id}
                methods: [GET]
                auth: [api_key]
                compose: proxy
                backends:
                  - {name: x, service: users, path: "/x/{id}"}
                  - {name: y, service: users, path: /y}
              - id: a
                path: /b
                methods: [GET]
                auth: [api_key]
                backends:
                  - name: x
                    service: nowhere
                    path: /x/{missing}
                    tmeout_ms: 5
              - id: c
                path: /c
                methods: [GET]
                auth: [api_key]
                compose: group
                backends:
                  - {name: p, service: users, path: "/p/{q.id}"}
                  - {name: q, service: users, path: "/q/{p.id}"}
                  - {name: r, service: users, path: "/r/{ghost.id}"}
            """,
            "orders.yaml": """\
            team: orders
            routes:
              - id: d
                path: /a/{other}
                methods: [POST, GET]
                auth: [jwt]
                backends:
                  - {name: o, service: orders, path: /o}
            """,
        },
    )
    assert problems(infra) == [
        "infra/routes/profiles.yaml:1: team profile: team 'profile' does not match the file name "
        "(expected team: profiles)",
        "infra/routes/profiles.yaml:4: route a: GET /a/{id} is already claimed by route d "
        "(infra/routes/orders.yaml:3)",
        "infra/routes/profiles.yaml:7: route a: compose: proxy needs exactly one backend, found 2",
        "infra/routes/profiles.yaml:11: route a: duplicate route id (first defined at "
        "infra/routes/profiles.yaml:3)",
        "infra/routes/profiles.yaml:17: route a: backends[0].service: unknown service 'nowhere'",
        "infra/routes/profiles.yaml:18: route a: backends[0].path: {missing} is not a parameter of path /b",
        "infra/routes/profiles.yaml:19: route a: unknown key 'backends[0].tmeout_ms'",
        "infra/routes/profiles.yaml:25: route c: backends form a dependency cycle: p -> q",
        "infra/routes/profiles.yaml:28: route c: backends[2].path: {ghost.id} refers to unknown "
        "backend 'ghost'",
    ]


def test_shape_errors_name_the_field(tmp_path: Path) -> None:
    infra = write_infra(
        tmp_path,
        {
            "t.yaml": """\
            team: t
            routes:
              - id: slow
                path: /slow
                methods: [GETT]
                timeout_ms: 40000
                public: true
                backends:
                  - {name: s, service: users, path: /s, timeout_ms: 100}
              - id: nobody
                path: /n
                methods: [GET]
                backends: [{name: s, service: users, path: /s}]
            """
        },
    )
    assert problems(infra) == [
        "infra/routes/t.yaml:5: route slow: methods[0]: Input should be 'GET', 'HEAD', 'POST', "
        "'PUT', 'PATCH', 'DELETE' or 'OPTIONS'",
        "infra/routes/t.yaml:6: route slow: timeout_ms: Input should be less than or equal to 30000",
        "infra/routes/t.yaml:10: route nobody: give auth: [api_key, jwt] or public: true",
    ]


def test_backend_deadline_cannot_exceed_the_route(tmp_path: Path) -> None:
    infra = write_infra(
        tmp_path,
        {
            "t.yaml": """\
            team: t
            routes:
              - id: r
                path: /r
                methods: [GET]
                public: true
                timeout_ms: 1000
                backends:
                  - {name: s, service: users, path: /s, timeout_ms: 2000}
            """
        },
    )
    assert problems(infra) == [
        "infra/routes/t.yaml:9: route r: backends[0].timeout_ms: 2000 exceeds the route's deadline of 1000 ms"
    ]


def test_yaml_errors_and_duplicate_keys(tmp_path: Path) -> None:
    infra = write_infra(
        tmp_path,
        {
            "a.yaml": "team: a\nroutes: [\n",
            "b.yaml": "team: b\nteam: b\nroutes: []\n",
        },
    )
    found = problems(infra)
    assert found[0].startswith("infra/routes/a.yaml:3: file: invalid YAML")
    assert found[1] == "infra/routes/b.yaml:2: file: duplicate key 'team'"


def test_gateway_and_plan_problems(tmp_path: Path) -> None:
    gateway = GATEWAY + (
        "auth:\n  jwt:\n    - issuer: x\n      audience: y\n"
        "      jwks_url: http://login.example.com/jwks\n      default_plan: gold\n"
    )
    plans = "plans:\n  free: {rate: {limit: 5, per: hour}}\n"
    infra = write_infra(tmp_path, {}, gateway=gateway, plans=plans)
    assert problems(infra) == [
        "infra/gateway.yaml:7: gateway: auth.jwt[0]: jwks_url must be https (plain http only on loopback)",
        "infra/plans.yaml:2: plans: plans.free.rate.per: Input should be 'second' or 'minute'",
    ]


def test_service_url_from_environment(tmp_path: Path) -> None:
    infra = write_infra(tmp_path, {"profiles.yaml": GOOD_ROUTE})
    config = compile_infra(infra, "dev", {"TOLLWAY_SERVICE_USERS": "http://127.0.0.1:8080/"})
    assert config.services["users"] == "http://127.0.0.1:8080"
    assert str(config.routes[0].backends[0].target) == "http://127.0.0.1:8080"


def test_cli_check_exits_1_and_prints_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_infra(tmp_path, {"x.yaml": "team: y\nroutes: []\n", "z.yaml": "team: z\nroutes: [{id: q}]\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["routes", "check", "--infra", "infra"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "infra/routes/x.yaml:1: team y: team 'y' does not match the file name (expected team: x)" in out
    assert "infra/routes/z.yaml:2: route q: missing key 'path'" in out
    assert len(out) == 4  # the team, and q's missing path, methods and backends


def test_cli_check_passes_on_the_repository_config(capsys: pytest.CaptureFixture[str]) -> None:
    infra = Path(__file__).resolve().parents[3] / "infra"
    assert main(["routes", "check", "--infra", str(infra)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_shipped_schemas_are_current() -> None:
    from tollway.config.schema import main as schema_main

    schemas = Path(__file__).resolve().parents[3] / "schemas"
    assert schema_main([str(schemas), "--check"]) == 0


def test_a_greedy_parameter_is_declared_last_and_compiled(tmp_path: Path) -> None:
    route = """\
            team: t
            routes:
              - id: files
                path: /files/{rest+}
                methods: [GET]
                public: true
                backends: [{name: s, service: users, path: "/static/{rest}"}]
              - id: bad
                path: /files/{rest+}/x
                methods: [GET]
                public: true
                backends: [{name: s, service: users, path: "/static/{rest}"}]
            """
    assert problems(write_infra(tmp_path, {"t.yaml": route})) == [
        "infra/routes/t.yaml:9: route bad: path: greedy parameter {rest+} must be the path's last segment",
    ]
    good = route.split("              - id: bad")[0]
    config = compile_infra(write_infra(tmp_path / "ok", {"t.yaml": good}), "dev", {})
    assert config.routes[0].greedy == "rest"


def test_stripe_meter_problems_name_their_line(tmp_path: Path) -> None:
    plans = (
        "plans:\n"
        "  free: {price: {per_1000_units: 0}}\n"
        "  pro:\n"
        "    price: {per_1000_units: 0.5}\n"
        "    stripe: {meter: api requests}\n"
        "  tokens:\n"
        "    stripe: {metre: tokens}\n"
        "  ok: {stripe: {meter: api_requests, customer_key: customer, value_key: units}}\n"
    )
    infra = write_infra(tmp_path, {}, plans=plans)
    assert problems(infra) == [
        "infra/plans.yaml:5: plans: plans.pro.stripe.meter: 'api requests': a Stripe name holds no spaces",
        "infra/plans.yaml:7: plans: missing key 'plans.tokens.stripe.meter'",
        "infra/plans.yaml:7: plans: unknown key 'plans.tokens.stripe.metre'",
    ]


def test_a_cache_can_only_vary_on_a_field_that_reaches_a_backend(tmp_path: Path) -> None:
    infra = write_infra(
        tmp_path,
        {
            "c.yaml": """\
            team: c
            routes:
              - id: c.get
                path: /v1/c/{id}
                methods: [GET]
                public: true
                cache: {ttl_s: 60, shared: true, vary: [accept-language, Authorization, x-forwarded-host]}
                compose: group
                backends:
                  - name: a
                    service: users
                    path: /a/{id}
                    cache: {ttl_s: 60, vary: [cookie, x-api-key]}
            """
        },
    )
    assert problems(infra) == [
        "infra/routes/c.yaml:7: route c.get: cache.vary: Authorization never reaches a backend, "
        "so no answer can vary on it",
        "infra/routes/c.yaml:7: route c.get: cache.vary: x-forwarded-host never reaches a backend, "
        "so no answer can vary on it",
        "infra/routes/c.yaml:13: route c.get: backends[0].cache.vary: x-api-key never reaches a backend, "
        "so no answer can vary on it",
    ]


def test_a_routes_implied_head_and_its_literals_spelled_otherwise_are_claimed(tmp_path: Path) -> None:
    """A GET route answers HEAD: a public HEAD route of the same shape took or lost it
    silently, by file order; `/v1/%61dmin` is the router's `/v1/admin` (found attacking
    issue 18's fixes)."""
    infra = write_infra(
        tmp_path,
        {
            "profiles.yaml": """\
            team: profiles
            routes:
              - id: page
                path: /v1/page
                methods: [GET]
                auth: [api_key]
                backends: [{name: x, service: users, path: /x}]
              - id: page.head
                path: /v1/page
                methods: [HEAD]
                public: true
                backends: [{name: x, service: users, path: /x}]
              - id: admin
                path: /v1/admin
                methods: [POST]
                auth: [api_key]
                backends: [{name: x, service: users, path: /x}]
              - id: admin.spelled
                path: /v1/%61dmin
                methods: [POST]
                public: true
                backends: [{name: x, service: users, path: /x}]
            """,
        },
    )
    assert problems(infra) == [
        "infra/routes/profiles.yaml:9: route page.head: HEAD /v1/page is already claimed by route page "
        "(infra/routes/profiles.yaml:3)",
        "infra/routes/profiles.yaml:19: route admin.spelled: POST /v1/%61dmin is already claimed by route "
        "admin (infra/routes/profiles.yaml:13)",
    ]
