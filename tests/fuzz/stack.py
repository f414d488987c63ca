"""A whole gateway for hostile-input tests: real infra files, the moto tables and queue,
an API key issued by the CLI, a dev-issuer JWT, and loopback backends that always succeed.

Because every backend answers 200, any 5xx the gateway returns is the gateway's own fault.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from tollway.assemble import build_app
from tollway.cli import main
from tollway.http.app import GatewayApp
from tollway.settings import Settings

from tests.infra_files import write_infra

# Budget of generated cases per fuzz test: small in `make test`, large in `make fuzz`.
EXAMPLES = int(os.environ.get("TOLLWAY_FUZZ_EXAMPLES", "100"))
# `make test` runs a fixed, repeatable set of cases; `make fuzz` (which sets the budget) explores.
DERANDOMIZE = "TOLLWAY_FUZZ_EXAMPLES" not in os.environ

ISSUER = "https://fuzz.tollway.local/"
JWT_SECRET = "a-fuzzing-secret-of-at-least-32-bytes"
SCOPES = "things:read,things:write"

ROUTES = """\
- id: echo
  path: /v1/echo/{thing}
  methods: [GET, POST, PUT, PATCH, DELETE]
  public: true
  backends:
    - {name: b, service: svc, path: "/echo/{thing}", query: {fixed: "1", t: "{thing}"}}
- id: things.get
  path: /v1/things/{id}
  methods: [GET]
  auth: [api_key, jwt]
  scopes: [things:read]
  compose: group
  backends:
    - {name: thing, service: svc, path: "/echo/things/{id}"}
    - {name: extra, service: svc, path: /echo/extra, query: {id: "{id}"}, required: false}
    - {name: chained, service: svc, path: "/echo/chain/{thing.method}", headers: {x-via: "{thing.method}"}}
- id: things.merge
  path: /v1/merge/{a}/{b}
  methods: [GET]
  auth: [api_key]
  compose: merge
  backends:
    - {name: one, service: svc, path: "/echo/{a}"}
    - {name: two, service: svc, path: "/echo/{b}/x"}
- id: orders.create
  path: /v1/orders
  methods: [POST]
  auth: [api_key, jwt]
  scopes: [things:write]
  quota_failure: open
  validate:
    body:
      type: object
      required: [items]
      additionalProperties: false
      properties:
        items:
          type: array
          minItems: 1
          items:
            type: object
            required: [sku, qty]
            properties: {sku: {type: string}, qty: {type: integer, minimum: 1}}
    query: {type: object, properties: {dry_run: {type: boolean}, limit: {type: integer, maximum: 10}}}
  backends:
    - {name: b, service: svc, path: /echo/orders, method: POST, body: {order: "new"}}
- id: search
  path: /v1/search
  methods: [GET]
  auth: [jwt]
  backends:
    - {name: b, service: svc, path: /echo/search, method: POST, body: {q: "x"}}
- id: status
  path: /v1/status
  methods: [GET, HEAD]
  public: true
  backends:
    - {name: b, service: svc, path: /echo/status}
"""
# Roomy limits: the fuzzer should meet the gateway's logic, not the rate limit.
PLANS = """\
plans:
  free: {rate: {limit: 100000, per: second}, quota: {limit: 100000000, per: day}}
  tiny: {rate: {limit: 1, per: minute}}
"""
AUTH = f"""\
auth:
  api_keys: {{cache_ttl_s: 30, negative_cache_ttl_s: 30, cache_size: 1000}}
  jwt:
    - issuer: "{ISSUER}"
      audience: tollway
      hs256_secret_env: FUZZ_JWT_SECRET
      default_plan: free
"""


@dataclass
class Credentials:
    key: str  # every scope
    scopeless_key: str  # valid, but without any scope
    token: str  # a JWT with every scope

    def headers(self, kind: str) -> dict[str, str]:
        """Credential headers of one kind: the valid ones, and the ones that must never pass."""
        forged = jwt.encode(claims(), "not-the-secret-but-long-enough-32b", algorithm="HS256")
        expired = jwt.encode(claims(exp=int(time.time()) - 3600), JWT_SECRET, algorithm="HS256")
        return {
            "none": {},
            "key": {"x-api-key": self.key},
            "bearer-key": {"authorization": f"Bearer {self.key}"},
            "jwt": {"authorization": f"Bearer {self.token}"},
            "scopeless": {"x-api-key": self.scopeless_key},
            "unknown-key": {"x-api-key": self.key[:-7] + "aaaaaaa"},
            "forged-jwt": {"authorization": f"Bearer {forged}"},
            "expired-jwt": {"authorization": f"Bearer {expired}"},
            "basic": {"authorization": "Basic dXNlcjpwYXNz"},
        }[kind]


VALID = frozenset({"key", "bearer-key", "jwt"})
KINDS = ("none", "key", "bearer-key", "jwt", "scopeless", "unknown-key", "forged-jwt", "expired-jwt", "basic")


def claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": "tollway", "sub": "fuzzer", "exp": now + 3600, "iat": now}
    return {**base, "scope": "things:read things:write", **extra}


def write_fuzz_infra(root: Path, backend_url: str) -> Path:
    return write_infra(
        root,
        {"svc": backend_url},
        ROUTES,
        defaults="{timeout_ms: 3000, max_body_bytes: 65536, max_response_bytes: 1048576}",
        auth=AUTH,
        plans=PLANS,
    )


def environ(aws: dict[str, str]) -> dict[str, str]:
    # A container's environment: the emulator's endpoint (set by the moto fixture) included.
    return {"AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], **aws, "FUZZ_JWT_SECRET": JWT_SECRET}


def gateway_app(infra: Path, aws: dict[str, str], **overrides: object) -> GatewayApp:
    settings = Settings(
        infra=infra,
        stage="dev",
        keys_table=aws["TOLLWAY_KEYS_TABLE"],
        key_secret_id=aws["TOLLWAY_KEY_SECRET_ID"],
        quota_table=aws["TOLLWAY_QUOTA_TABLE"],
        usage_queue_url=aws["TOLLWAY_USAGE_QUEUE_URL"],
        environ=environ(aws),
    )
    return build_app(settings, **overrides)  # type: ignore[arg-type]


def issue_key(
    infra: Path, capsys, *, scopes: str = SCOPES, plan: str = "free", consumer: str = "fuzzer"
) -> str:
    """A key issued the way an operator issues one: `tollway keys create` (env from monkeypatch)."""
    capsys.readouterr()
    argv = ["keys", "create", "--consumer", consumer, "--plan", plan, "--json", "--infra", str(infra)]
    status = main([*argv, "--scopes", scopes] if scopes else argv)
    out, err = capsys.readouterr()
    assert status == 0, err
    # Other threads may log to the same captured stdout: the key is the CLI's one JSON line.
    (line,) = [line for line in out.splitlines() if line.startswith('{"key"')]
    return json.loads(line)["key"]


def credentials(infra: Path, capsys) -> Credentials:
    return Credentials(
        key=issue_key(infra, capsys),
        scopeless_key=issue_key(infra, capsys, scopes=""),
        token=jwt.encode(claims(), JWT_SECRET, algorithm="HS256"),
    )
