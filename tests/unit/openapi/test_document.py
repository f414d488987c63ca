"""`tollway openapi`: a valid OpenAPI 3.1 document of the configured routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from tollway.cli import main
from tollway.config.compile import compile_infra
from tollway.openapi import document

INFRA = Path(__file__).resolve().parents[3] / "infra"


@pytest.fixture(scope="module")
def doc() -> dict:
    return document(compile_infra(INFRA, "dev", {}))


def test_document_is_valid_openapi_31(doc: dict) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"


def test_every_route_and_method_is_documented(doc: dict) -> None:
    config = compile_infra(INFRA, "dev", {})
    for route in config.routes:
        for method in route.methods - {"HEAD"}:
            assert method.lower() in doc["paths"][route.path]


def test_protected_routes_declare_security_and_problem_responses(doc: dict) -> None:
    op = doc["paths"]["/v1/users/{user_id}"]["get"]
    assert {"ApiKey": []} in op["security"]
    assert {"401", "403", "404", "405", "413", "429", "502", "504"} <= set(op["responses"])
    assert op["parameters"][0] == {
        "name": "user_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    assert "RateLimit" in op["responses"]["200"]["headers"]
    public = doc["paths"]["/v1/status"]["get"]
    assert public["security"] == [] and "401" not in public["responses"]


def test_cli_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi", "--infra", str(INFRA), "--server", "https://api.example.com"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["servers"] == [{"url": "https://api.example.com"}]
    validate(printed)


def test_a_greedy_parameter_is_documented_as_a_plain_path_parameter(tmp_path: Path) -> None:
    from tests.infra_files import write_infra

    routes = """\
    - id: files
      path: /v1/files/{rest+}
      methods: [GET]
      public: true
      backends: [{name: f, service: svc, path: "/static/{rest}"}]
    """
    infra = write_infra(tmp_path, {"svc": "http://127.0.0.1:9"}, routes)
    doc = document(compile_infra(infra, "dev", {}))
    validate(doc)
    (operation,) = doc["paths"]["/v1/files/{rest}"].values()
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["rest"]
