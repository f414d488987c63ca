"""The bench's own infra folder and emulated AWS: routes, plans, tables, keys.

Written to a temp folder per run; its services point at the run's loopback backends.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

from tests.bench.procs import ROOT

STAGE = "bench"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "Tollway",
}
KEY_CACHE_SIZE = 100  # small on purpose: the RSS measure sends more distinct keys than this
RACE_LIMIT = 100  # the quota of the plan measure 8 races 500 concurrent requests against
TINY_LIMIT = 3


GATEWAY = """\
stages:
  {stage}:
    services:
      backend: "{backend}"
      slow: "{slow}"
defaults: {{timeout_ms: 5000, max_body_bytes: 1048576}}
auth:
  api_keys: {{cache_size: {cache_size}, cache_ttl_s: 30, negative_cache_ttl_s: 30}}
"""

PLANS = f"""\
plans:
  bench: {{quota: {{limit: 100000000, per: month}}, price: {{per_1000_units: 0.5}}}}
  tiny: {{quota: {{limit: {TINY_LIMIT}, per: day}}}}
  race: {{quota: {{limit: {RACE_LIMIT}, per: day}}}}
"""

ROUTES = """\
team: bench
routes:
  - id: ping
    path: /v1/ping
    methods: [GET]
    public: true
    cost: 0
    backends:
      - {name: b, service: backend, path: /v1/ping}
  - id: keyed
    path: /v1/keyed
    methods: [GET]
    auth: [api_key]
    backends:
      - {name: b, service: backend, path: /v1/ping}
  - id: metered
    path: /v1/metered
    methods: [POST]
    auth: [api_key]
    metering:
      units: usage.prompt_tokens + 3 * usage.completion_tokens
      estimate: {field: max_tokens, weight: 3, plus: 100}
    backends:
      - {name: chat, service: slow, path: /usage, method: POST}
  - id: slow.one
    path: /v1/slow/one
    methods: [GET]
    public: true
    backends:
      - {name: a, service: slow, path: /slow, query: {ms: "50"}}
  - id: slow.five
    path: /v1/slow/five
    methods: [GET]
    public: true
    compose: group
    backends:
      - {name: a, service: slow, path: /slow, query: {ms: "50"}}
      - {name: b, service: slow, path: /slow, query: {ms: "50"}}
      - {name: c, service: slow, path: /slow, query: {ms: "50"}}
      - {name: d, service: slow, path: /slow, query: {ms: "50"}}
      - {name: e, service: slow, path: /slow, query: {ms: "50"}}
"""


def write_infra(root: Path, backend: str, slow: str) -> Path:
    infra = root / "infra"
    (infra / "routes").mkdir(parents=True, exist_ok=True)
    gateway = GATEWAY.format(stage=STAGE, backend=backend, slow=slow, cache_size=KEY_CACHE_SIZE)
    (infra / "gateway.yaml").write_text(gateway)
    (infra / "plans.yaml").write_text(PLANS)
    (infra / "routes" / "bench.yaml").write_text(textwrap.dedent(ROUTES))
    return infra


@dataclass
class Aws:
    """The emulated account of one run: the functions' environment and the keys it issued."""

    url: str
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)  # plan -> a key on that plan
    auth_error: str | None = None  # why no key could be issued (the auth piece missing)


def provision_aws(moto_url: str, plans: list[str]) -> Aws:
    """Reset the emulator, create template.yaml's tables and queues, issue one key per plan."""
    from tollway.dev.template import provision, read_template

    httpx.post(f"{moto_url}/moto-api/reset", trust_env=False)
    kwargs = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    creds = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    dynamodb = boto3.client("dynamodb", **kwargs, **creds)
    sqs = boto3.client("sqs", **kwargs, **creds)
    secrets = boto3.client("secretsmanager", **kwargs, **creds)
    provisioned = provision(read_template(ROOT / "template.yaml"), dynamodb, sqs, {"Stage": STAGE}, secrets)
    env = {**FAKE_AWS, **provisioned.environment, "AWS_ENDPOINT_URL": moto_url, "TOLLWAY_STAGE": STAGE}
    aws = Aws(moto_url, env)
    try:
        from datetime import UTC, datetime

        from tollway.auth.keys import KeyMac, key_hash
        from tollway.auth.store import new_record
        from tollway.tools.keystore import KeyStore
    except ImportError as exc:
        aws.auth_error = f"API keys not available: {exc}"
        return aws
    secret = secrets.get_secret_value(SecretId=env["TOLLWAY_KEY_SECRET_ID"])["SecretString"]
    mac = KeyMac(secret.encode("utf-8"))
    aws.env["BENCH_KEY_SECRET"] = secret  # for unknown_key() in the workers; never the router's
    store = KeyStore(dynamodb, env["TOLLWAY_KEYS_TABLE"])
    for plan in plans:
        key, key_id = mac.new_key()
        store.put(new_record(key_hash(key), key_id, f"bench-{plan}", plan, [], datetime.now(UTC), None))
        aws.keys[plan] = key
    return aws


def unknown_key(secret: str | None = None) -> str:
    """A key the deployment could have issued (its MAC holds) that the table does not have."""
    from tollway.auth.keys import KeyMac

    secret = secret if secret is not None else os.environ["BENCH_KEY_SECRET"]
    return KeyMac(secret.encode("utf-8")).new_key()[0]


def forged_key() -> str:
    """A well-formed key whose MAC is under another secret: what anyone can mint."""
    from tollway.auth.keys import KeyMac

    return KeyMac(os.urandom(32)).new_key()[0]
