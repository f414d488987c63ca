"""Config mistakes caught before a deploy: scopes no credential can hold, YAML syntax errors
as one line at their place, `routes check --json` for CI, each stage's service URLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tollway.cli import main
from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError

from tests.unit.config.test_check import GOOD_ROUTE, problems, write_infra

ROUTE_WITH_SCOPES = """\
team: t
routes:
  - id: a
    path: /a
    methods: [GET]
    auth: [api_key]
    scopes:
      - users:read
      - {scope}
    backends: [{{name: b, service: users, path: /a}}]
"""


@pytest.mark.parametrize("scope", ['"users read"', '"a\\"b"', "'a\\b'", '"tab\\there"', '"é"', '""'])
def test_a_scope_no_credential_can_hold_is_refused_at_its_line(tmp_path: Path, scope: str) -> None:
    infra = write_infra(tmp_path, {"t.yaml": ROUTE_WITH_SCOPES.format(scope=scope)})
    (found,) = problems(infra)
    assert found.startswith("infra/routes/t.yaml:9: route a: scopes[1]: scope ")
    assert "is not an OAuth scope token (RFC 6749" in found


# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
TOKEN_CHARS = [chr(c) for c in [0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)]]


@given(st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=40))
def test_every_rfc6749_scope_token_is_accepted(scope: str) -> None:
    from tollway.config.models import Route

    route = {"id": "a", "path": "/a", "methods": ["GET"], "auth": ["api_key"], "scopes": [scope]}
    route["backends"] = [{"name": "b", "service": "users", "path": "/a"}]
    assert Route.model_validate(route).scopes == [scope]


@given(st.text(min_size=1, max_size=20).filter(lambda s: any(c not in TOKEN_CHARS for c in s)))
def test_anything_else_is_refused(scope: str) -> None:
    from pydantic import ValidationError
    from tollway.config.models import Route

    route = {"id": "a", "path": "/a", "methods": ["GET"], "auth": ["api_key"], "scopes": [scope]}
    route["backends"] = [{"name": "b", "service": "users", "path": "/a"}]
    with pytest.raises(ValidationError):
        Route.model_validate(route)


# (file text, the line to fix, what the one line says)
BROKEN_YAML = [
    ("team: t\nroutes:\n  - id: a\n    path: /a\n   methods: [GET]\n", 5, "indentation does not match"),
    ('team: t\nroutes:\n  - id: a\n    path: "/a\n', 4, "quoted string starts here and is never closed"),
    ("team: t\nroutes:\n\t- id: a\n", 3, "a tab character: YAML indents with spaces only"),
    ("team: t\nroutes: [a, b\n", 2, "a [ list starts here and is not closed with ]"),
    ("team: t\nroutes: {a: 1\n", 2, "a { mapping starts here and is not closed with }"),
    ("team: t\nroutes: a: b\n", 2, "unexpected ': '"),
    ("team: t\nroutes:\n  - id: a\n    path /a\n    methods: [GET]\n", 4, "a key without ':' after it"),
    ("team: *x\n", 1, "alias 'x': no anchor of that name comes before it"),
    ('team: t\nroutes:\n  - id: "\\q"\n', 3, "unknown escape \\q in a double-quoted string"),
    ("team: t\nroutes: !!python/object x\n", 2, "unknown tag !!python/object"),
    ("team: t\nroutes:\n  - id: a\n    path: @a\n", 4, "'@' cannot start a value: quote the value"),
    ("team: t\nroutes: [\n", 3, "the file ends where a value was expected"),
    ("team: t\nroutes:\n  - a: [1,\n  - b\n", 4, "a value was expected here, but found a list item"),
]


@pytest.mark.parametrize(("text", "line", "says"), BROKEN_YAML)
def test_a_yaml_syntax_error_is_one_line_at_the_place_to_fix(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    found = [p for p in problems(write_infra(tmp_path, {"t.yaml": text})) if ": file: " in p]
    assert len(found) == 1, found
    assert found[0].startswith(f"infra/routes/t.yaml:{line}: file: invalid YAML: column ")
    assert says in found[0]
    # PyYAML's own words for its parser's states never reach the author.
    for raw in ("<block end>", "<stream end>", "while scanning", "while parsing", "\n"):
        assert raw not in found[0]


def test_check_json_lists_every_problem_for_ci(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_scope = ROUTE_WITH_SCOPES.format(scope='"a b"')
    write_infra(tmp_path, {"t.yaml": bad_scope, "u.yaml": "team: u\nroutes: [a\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["routes", "check", "--infra", "infra", "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False
    assert [(p["file"], p["line"], p["subject"]) for p in report["problems"]] == [
        ("infra/routes/t.yaml", 9, "route a"),
        ("infra/routes/u.yaml", 2, "file"),
    ]
    assert captured.err == ""


def test_check_json_on_a_good_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_infra(tmp_path, {"profiles.yaml": GOOD_ROUTE})
    monkeypatch.chdir(tmp_path)
    assert main(["routes", "check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "routes": 1, "problems": []}


def test_check_json_on_a_folder_that_is_not_infra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["routes", "check", "--json"]) == 1
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["file"] == "infra/gateway.yaml" and "not an infra folder" in problem["message"]


def test_list_shows_each_stage_s_service_urls_with_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_infra(tmp_path, {"profiles.yaml": GOOD_ROUTE})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOLLWAY_SERVICE_ORDERS", "http://127.0.0.1:8080")
    assert main(["routes", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"] == {
        "dev": {"users": "http://127.0.0.1:9101", "orders": "http://127.0.0.1:8080"},
        "prod": {"users": "https://users.internal.example.com", "orders": "http://127.0.0.1:8080"},
    }
    assert main(["routes", "list", "--stage", "prod"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[lines.index("") + 1].split() == ["SERVICE", "dev", "prod", "(listed)"]
    assert lines[-1].split() == ["users", "http://127.0.0.1:9101", "https://users.internal.example.com"]


def test_list_of_a_broken_folder_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_infra(tmp_path, {"t.yaml": "team: t\nroutes: [\n"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        compile_infra(Path("infra"), "dev", {})
    assert main(["routes", "list"]) == 1
