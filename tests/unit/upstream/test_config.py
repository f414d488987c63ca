"""Compile-time rules for composition, caching and translation."""

from __future__ import annotations

import pytest
import yaml
from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError


def infra(tmp_path, route):
    (tmp_path / "routes").mkdir()
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump({"stages": {"t": {"services": {"s": "http://x"}}}}))
    (tmp_path / "plans.yaml").write_text(yaml.safe_dump({"plans": {"free": {}}}))
    route = {"id": "r", "path": "/r/{id}", "methods": ["GET"], "auth": ["api_key"], **route}
    (tmp_path / "routes" / "t.yaml").write_text(yaml.safe_dump({"team": "t", "routes": [route]}))
    return tmp_path


def problems(tmp_path, route) -> str:
    with pytest.raises(ConfigError) as caught:
        compile_infra(infra(tmp_path, route), "t")
    return str(caught.value)


def test_dependencies_are_computed_and_ordered(tmp_path):
    route = {
        "compose": "group",
        "backends": [
            {"name": "c", "service": "s", "path": "/c/{b.id}", "query": {"a": "{a.x}"}},
            {"name": "b", "service": "s", "path": "/b/{a.id}"},
            {"name": "a", "service": "s", "path": "/a/{id}"},
        ],
    }
    compiled = compile_infra(infra(tmp_path, route), "t").routes[0]
    assert [b.name for b in compiled.backends] == ["a", "b", "c"]
    assert compiled.backends[2].depends_on == {"a", "b"}


def test_cycles_are_rejected(tmp_path):
    route = {
        "compose": "group",
        "backends": [
            {"name": "a", "service": "s", "path": "/a/{b.id}"},
            {"name": "b", "service": "s", "path": "/b/{a.id}"},
        ],
    }
    assert "dependency cycle" in problems(tmp_path, route)


def test_only_get_routes_cache(tmp_path):
    route = {
        "methods": ["GET", "POST"],
        "cache": {"ttl_s": 5},
        "backends": [{"name": "a", "service": "s", "path": "/a"}],
    }
    assert "only GET routes can be cached" in problems(tmp_path, route)


def test_a_body_template_needs_a_method_with_a_body(tmp_path):
    route = {"backends": [{"name": "a", "service": "s", "path": "/a", "body": {"q": "{id}"}}]}
    assert "a body needs method POST" in problems(tmp_path, route)


def test_deadlines_above_api_gateways_limit_are_rejected(tmp_path):
    route = {"timeout_ms": 30_001, "backends": [{"name": "a", "service": "s", "path": "/a"}]}
    assert "timeout_ms" in problems(tmp_path, route)
