"""Service specs: parsing, config problems that name their place, the environment override."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError
from tollway.table.targets import Reference, ServiceTarget, parse_target, parse_urls


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        ("http://a:81/", ServiceTarget(("http://a:81",))),
        (["http://a", "https://b/base"], ServiceTarget(("http://a", "https://b/base"))),
        ("http://a, http://b", ServiceTarget(("http://a", "http://b"))),
        ("ssm:/tollway/prod/users", ServiceTarget(reference=Reference("ssm", "/tollway/prod/users"))),
        ("ssm:users-url", ServiceTarget(reference=Reference("ssm", "users-url"))),
        ("cloudmap:prod.local/users", ServiceTarget(reference=Reference("cloudmap", "prod.local/users"))),
    ],
)
def test_specs(spec, target):
    assert parse_target(spec) == target


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ftp://a", "'ftp://a' is not an http(s) URL"),
        ([], "a list of URLs must not be empty"),
        (["http://a", "http://a/"], "a URL is listed twice"),
        ("http://a?x=1", "is not an http(s) URL"),
        ("ssm:", "an SSM parameter name is ssm:/path/name"),
        ("ssm:/a b", "an SSM parameter name is ssm:/path/name"),
        ("cloudmap:users", "a Cloud Map reference is cloudmap:namespace/service"),
        ("cloudmap:ns/svc/x", "a Cloud Map reference is cloudmap:namespace/service"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_target(spec)


def test_a_target_prints_as_it_would_be_written():
    assert str(parse_target(["http://a", "http://b"])) == "http://a,http://b"
    assert str(parse_target("cloudmap:ns/users")) == "cloudmap:ns/users"
    assert parse_urls(str(parse_target(["http://a", "http://b"]))) == ("http://a", "http://b")


def write_infra(root: Path, services: dict) -> Path:
    (root / "routes").mkdir(parents=True)
    gateway = {"stages": {"dev": {"services": services}, "prod": {"services": {"users": "http://p"}}}}
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway, sort_keys=False))
    (root / "plans.yaml").write_text("plans:\n  free: {}\n")
    route = {"id": "u", "path": "/u", "methods": ["GET"], "public": True}
    route["backends"] = [{"name": "u", "service": "users", "path": "/u"}]
    (root / "routes" / "t.yaml").write_text(yaml.safe_dump({"team": "t", "routes": [route]}))
    return root


def test_every_form_compiles_offline(tmp_path):
    # No AWS endpoint or credentials are needed: references are only parsed.
    services = {
        "users": "ssm:/tollway/users",
        "orders": ["http://o1", "http://o2"],
        "maps": "cloudmap:ns/maps",
    }
    config = compile_infra(write_infra(tmp_path, services), "dev")
    assert config.routes[0].backends[0].target == ServiceTarget(reference=Reference("ssm", "/tollway/users"))
    assert dict(config.services) == {
        "users": "ssm:/tollway/users",
        "orders": "http://o1,http://o2",
        "maps": "cloudmap:ns/maps",
    }


def test_a_bad_spec_is_a_problem_with_its_line(tmp_path):
    infra = write_infra(tmp_path, {"users": "cloudmap:users"})
    with pytest.raises(ConfigError) as caught:
        compile_infra(infra, "dev", display_root=tmp_path)
    assert str(caught.value) == (
        "gateway.yaml:3: gateway: stages.dev.services: service users: "
        "'cloudmap:users': a Cloud Map reference is cloudmap:namespace/service"
    )


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("http://127.0.0.1:8080/", ServiceTarget(("http://127.0.0.1:8080",))),
        ("http://a:1,http://b:2", ServiceTarget(("http://a:1", "http://b:2"))),
        ("cloudmap:ns/users", ServiceTarget(reference=Reference("cloudmap", "ns/users"))),
    ],
)
def test_the_environment_wins_over_any_form(tmp_path, value, target):
    infra = write_infra(tmp_path, {"users": "ssm:/tollway/users"})
    config = compile_infra(infra, "dev", {"TOLLWAY_SERVICE_USERS": value})
    assert config.routes[0].backends[0].target == target


def test_a_bad_environment_override_is_a_problem(tmp_path):
    infra = write_infra(tmp_path, {"users": "http://a"})
    with pytest.raises(ConfigError) as caught:
        compile_infra(infra, "dev", {"TOLLWAY_SERVICE_USERS": "ssm:"}, display_root=tmp_path)
    assert str(caught.value) == (
        "gateway.yaml:4: gateway: TOLLWAY_SERVICE_USERS: 'ssm:': an SSM parameter name is ssm:/path/name"
    )
