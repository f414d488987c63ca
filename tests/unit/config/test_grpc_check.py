"""`tollway routes check` on gRPC backends (SPEC §7): every problem at once, as FILE:LINE."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tollway.cli import main
from tollway.config.compile import compile_infra

from tests.grpc_backends import copy_protos
from tests.unit.config.test_check import PLANS, problems, write_infra

GATEWAY = """\
stages:
  dev:
    services:
      things: "grpc://127.0.0.1:50051"
      secure: ["grpcs://a.internal:443", "grpcs://b.internal:443"]
      users: "http://127.0.0.1:9101"
defaults: {timeout_ms: 3000, max_body_bytes: 1048576}
"""
GOOD = """\
team: things
routes:
  - id: thing.get
    path: /v1/things/{id}
    methods: [GET]
    auth: [api_key]
    backends:
      - name: thing
        service: things
        grpc: tollway.test.v1.Things/Get
        body: {id: "{id}", version: 1}
        idempotent: true
  - id: things.list
    path: /v1/things
    methods: [GET, POST]
    auth: [api_key]
    compose: group
    backends:
      - {name: list, service: secure, grpc: tollway.test.v1.Things/List}
      - {name: user, service: users, path: "/users/{list.id}"}
"""


def infra_with(tmp_path: Path, routes: str, gateway: str = GATEWAY) -> Path:
    return copy_protos(write_infra(tmp_path, {"things.yaml": routes}, gateway=gateway, plans=PLANS))


def test_grpc_backends_compile_with_their_methods(tmp_path: Path) -> None:
    config = compile_infra(infra_with(tmp_path, GOOD), "dev", {})
    get, listing = config.routes
    method = get.backends[0].grpc
    assert method is not None
    assert (method.path, method.request, method.response) == (
        "/tollway.test.v1.Things/Get",
        "tollway.test.v1.GetRequest",
        "tollway.test.v1.Thing",
    )
    assert not method.server_streaming and get.backends[0].idempotent
    assert listing.backends[0].grpc is not None and listing.backends[0].grpc.server_streaming
    assert listing.backends[0].target is not None and len(listing.backends[0].target.urls) == 2
    assert listing.backends[1].grpc is None and listing.backends[1].depends_on == {"list"}


def test_every_grpc_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    routes = """\
    team: things
    routes:
      - id: a
        path: /a/{id}
        methods: [GET]
        auth: [api_key]
        compose: group
        backends:
          - name: nopkg
            service: things
            grpc: acme.nothing.v1.Things/Get
          - name: nosvc
            service: things
            grpc: tollway.test.v1.Nothing/Get
          - name: nomethod
            service: things
            grpc: tollway.test.v1.Things/Delete
          - name: upload
            service: things
            grpc: tollway.test.v1.Things/Upload
          - name: chat
            service: things
            grpc: tollway.test.v1.Things/Chat
      - id: b
        path: /b/{id}
        methods: [POST]
        auth: [api_key]
        compose: group
        backends:
          - name: pathed
            service: things
            grpc: tollway.test.v1.Things/Get
            path: /things/{id}
            query: {q: "1"}
          - name: fields
            service: things
            grpc: tollway.test.v1.Things/Create
            body:
              id: "{id}"
              colour: red
              child: {displayName: x, nope: 1}
              tags: [a]
          - name: http
            service: users
            grpc: tollway.test.v1.Things/Get
          - name: plain
            service: things
            path: /plain
          - name: retried
            service: users
            path: /x
            idempotent: true
    """
    infra = infra_with(tmp_path, routes)
    assert problems(infra) == [
        "infra/routes/things.yaml:11: route a: backends[0].grpc: "
        "no proto in infra/protos declares package 'acme.nothing.v1'",
        "infra/routes/things.yaml:14: route a: backends[1].grpc: "
        "no proto in infra/protos declares service 'tollway.test.v1.Nothing'",
        "infra/routes/things.yaml:17: route a: backends[2].grpc: "
        "service tollway.test.v1.Things has no method 'Delete'",
        "infra/routes/things.yaml:20: route a: backends[3].grpc: tollway.test.v1.Things/Upload is a client "
        "streaming method: only unary and server-streaming methods can be routed",
        "infra/routes/things.yaml:23: route a: backends[4].grpc: "
        "tollway.test.v1.Things/Chat is a bidirectional streaming method: "
        "only unary and server-streaming methods can be routed",
        "infra/routes/things.yaml:33: route b: backends[0].path: a gRPC backend has no path "
        "(its method is tollway.test.v1.Things/Get)",
        "infra/routes/things.yaml:34: route b: backends[0].query: a gRPC backend takes no query",
        "infra/routes/things.yaml:40: route b: backends[1].body.colour: "
        "tollway.test.v1.Thing has no field 'colour'",
        "infra/routes/things.yaml:41: route b: backends[1].body.child.nope: "
        "tollway.test.v1.Thing has no field 'nope'",
        "infra/routes/things.yaml:45: route b: backends[2].grpc: service users is not a gRPC service: "
        "its URL http://127.0.0.1:9101 must be grpc://host:port or grpcs://host:port",
        "infra/routes/things.yaml:47: route b: backends[3]: service things is a gRPC service "
        "(grpc://127.0.0.1:50051): name the method with grpc: <package>.<Service>/<Method>",
        "infra/routes/things.yaml:52: route b: backends[4].idempotent: only a gRPC backend takes it "
        "(an HTTP method says it)",
    ]


def test_a_proto_that_does_not_compile_is_reported_at_its_own_line(tmp_path: Path) -> None:
    infra = infra_with(tmp_path, GOOD)
    broken = infra / "protos" / "acme" / "broken.proto"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        textwrap.dedent(
            """\
            syntax = "proto3";
            package acme;

            message Broken {
              string name = 1
              Missing other = 2;
            }
            """
        )
    )
    found = problems(infra)
    assert found[0].startswith("infra/protos/acme/broken.proto:6: protos: ")
    assert "Expected \";\"" in found[0]
    # Routes on the protos that do compile are not blamed for the broken file.
    assert not [p for p in found if "route " in p]


def test_a_missing_import_is_reported(tmp_path: Path) -> None:
    infra = infra_with(tmp_path, GOOD)
    (infra / "protos" / "lonely.proto").write_text('syntax = "proto3";\nimport "not/there.proto";\n')
    found = problems(infra)
    assert any(p.startswith("infra/protos/lonely.proto:") and "not/there.proto" in p for p in found), found


def test_a_grpc_route_without_protos(tmp_path: Path) -> None:
    infra = write_infra(tmp_path, {"things.yaml": GOOD}, gateway=GATEWAY, plans=PLANS)
    assert problems(infra)[0] == (
        "infra/routes/things.yaml:10: route thing.get: backends[0].grpc: no proto declares "
        "tollway.test.v1.Things/Get: put the service's .proto files under infra/protos/"
    )


def test_a_service_list_mixing_http_and_grpc(tmp_path: Path) -> None:
    gateway = GATEWAY.replace('"grpc://127.0.0.1:50051"', '["grpc://127.0.0.1:50051", "http://127.0.0.1:1"]')
    found = problems(infra_with(tmp_path, GOOD, gateway))
    assert found[0].startswith("infra/gateway.yaml:3: gateway: ")
    assert "a service's URLs must all be http(s) or all grpc(s)" in found[0]


def test_routes_check_prints_them_and_exits_1(tmp_path: Path, capsys, monkeypatch) -> None:
    infra_with(tmp_path, GOOD.replace("Things/Get", "Things/Gett"))
    monkeypatch.chdir(tmp_path)
    assert main(["routes", "check", "--infra", "infra"]) == 1
    out = capsys.readouterr().out
    assert "infra/routes/things.yaml:10: route thing.get: backends[0].grpc: " in out


def test_metering_paths_on_a_grpc_route_must_read_numbers(tmp_path: Path) -> None:
    routes = """\
    team: things
    routes:
      - id: metered
        path: /v1/metered
        methods: [POST]
        auth: [api_key]
        metering:
          units: small + 2 * ratio + child.small + big + display_name + tags + nope + extra.anything
        backends:
          - {name: thing, service: things, grpc: tollway.test.v1.Things/Create}
    """
    found = problems(infra_with(tmp_path, routes))
    where = "infra/routes/things.yaml:8: route metered: metering.units"
    assert found == [
        f"{where}[3]: big: big is a 64-bit integer, which proto3's JSON writes as a string, "
        "and metering reads numbers: use a 32-bit integer or a double",
        f"{where}[4]: display_name: tollway.test.v1.Thing has no field 'display_name' in its JSON "
        "(its JSON name is 'displayName')",
        f"{where}[5]: tags: tags is a list",
        f"{where}[6]: nope: tollway.test.v1.Thing has no field 'nope' in its JSON",
    ]
