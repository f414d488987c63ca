"""The pre-traffic probes: one per route, harmless, and judged on 5xx only."""

from __future__ import annotations

from pathlib import Path

from tollway.config.compile import compile_infra
from tollway.deploy.hook import Answer, check
from tollway.deploy.probes import probes

from tests.infra_files import write_infra

ROUTES = """\
- {id: open, path: "/v1/open/{id}", methods: [GET, POST], public: true,
   backends: [{name: b, service: s, path: /x}]}
- {id: hook, path: /v1/hooks, methods: [POST], public: true, backends: [{name: b, service: s, path: /x}]}
- id: keyed
  path: "/v1/things/{id}/{rest+}"
  methods: [DELETE, PUT]
  auth: [api_key]
  backends: [{name: b, service: s, path: /x}]
"""


def config(tmp_path: Path):
    return compile_infra(write_infra(tmp_path, {"s": "http://127.0.0.1:9"}, ROUTES), "dev", {})


def test_one_probe_per_route_with_no_effect_a_backend_could_keep(tmp_path: Path) -> None:
    chosen = {p.route_id: (p.method, p.path) for p in probes(config(tmp_path))}
    assert chosen == {
        "open": ("GET", "/v1/open/tollway-probe"),  # public and safe: really proxied
        "hook": ("OPTIONS", "/v1/hooks"),  # public, no safe method: matched, then 405
        "keyed": ("PUT", "/v1/things/tollway-probe/tollway-probe"),  # no credentials: 401 first
    }
    event = probes(config(tmp_path))[0].event("rid-1")
    assert event["headers"]["x-request-id"] == "rid-1" and "authorization" not in event["headers"]


def test_every_answer_below_500_passes_and_any_5xx_or_failed_invocation_fails(tmp_path: Path) -> None:
    table = config(tmp_path)
    assert check(table, "arn", lambda target, event: Answer(404)).passed
    verdict = check(table, "arn", lambda t, e: Answer(503 if e["rawPath"] == "/v1/hooks" else 401))
    assert not verdict.passed and verdict.lines == ["route hook: OPTIONS /v1/hooks -> 503"]
    verdict = check(table, "arn", lambda t, e: Answer(None, "Unhandled: boom"))
    assert not verdict.passed and len(verdict.lines) == 3
