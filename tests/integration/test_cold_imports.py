"""A cold start imports what its route table needs: a fresh interpreter loads the router
adapter on a built table, answers one event, and reports the modules it loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tollway.cli import main as tollway

from tests.backends import loopback_backend
from tests.grpc_backends import copy_protos
from tests.infra_files import write_infra
from tests.lambda_router import ROUTER

ROUTES = """\
- id: status
  path: /v1/status
  methods: [GET]
  public: true
  backends: [{name: b, service: svc, path: /echo/status}]
"""
JWT = """\
auth:
  jwt:
    - issuer: "https://dev.tollway.local/"
      audience: tollway
      hs256_secret_env: T_SECRET
      default_plan: free
"""
# Loads the adapter as Lambda does, answers a GET, prints the loaded module names.
PROBE = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
event = {"version": "2.0", "routeKey": "$default", "rawPath": "/v1/status", "rawQueryString": "",
         "headers": {"host": "gw.example.com"}, "requestContext": {"http": {"method": "GET",
         "path": "/v1/status", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.1"},
         "requestId": "r1", "stage": "$default", "timeEpoch": 0}, "isBase64Encoded": False}
class Context:
    function_name = "RouterFunction"; aws_request_id = "r1"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:RouterFunction"
    def get_remaining_time_in_millis(self): return 30000
status = app.handler(event, Context())["statusCode"]
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


GRPC_ROUTE = """\
- id: thing
  path: /v1/things/{id}
  methods: [GET]
  public: true
  backends: [{name: t, service: things, grpc: tollway.test.v1.Things/Get, body: {id: "{id}"}}]
"""


def cold_start(tmp_path: Path, serve, aws: dict[str, str], auth: str = "", grpc: bool = False) -> set[str]:
    services = {"svc": serve(loopback_backend)}
    if grpc:
        services["things"] = "grpc://127.0.0.1:9"  # not called: the probe asks /v1/status
    source = write_infra(tmp_path / "src", services, ROUTES + (GRPC_ROUTE if grpc else ""), auth=auth)
    if grpc:
        copy_protos(source)
    infra = tmp_path / "built"
    shutil.copytree(source, infra)
    assert tollway(["routes", "check", "--infra", str(source), "--write-table", str(infra)]) == 0
    env = {**os.environ, **aws, "TOLLWAY_INFRA_DIR": str(infra), "TOLLWAY_STAGE": "dev", "T_SECRET": "s" * 32}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROUTER)], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert "route table not used" not in done.stdout + done.stderr  # the table was fresh
    return {name.split(".")[0] for name in report["modules"]} | set(report["modules"])


@pytest.mark.parametrize(
    "module",
    # stripe: only `tollway usage push-stripe` and StripePushFunction use it.
    ["jwt", "cryptography", "yaml", "tollway.config.load", "fastjsonschema", "stripe", "tollway.usage.push"]
    + ["grpc", "google.protobuf", "grpc_tools"],
)
def test_a_table_without_jwt_issuers_or_schemas_loads_no_jwt_yaml_or_validator(
    tmp_path: Path, serve, aws: dict[str, str], module: str
) -> None:
    assert module not in cold_start(tmp_path, serve, aws)


# What the router's init must never load, whatever its table: validation models (pydantic:
# the route table is compiled at build time, usage events are plain dicts), the tools' HTTP
# client (httpx), botocore's modules and boto3 (the lean AWS callers), the CLI and the dev
# tools, the blocking boto3 helpers, the other functions' code (tollway/usage) and the
# router's tools-only halves.
NEVER_AT_INIT = [
    "pydantic",
    "pydantic_core",
    "httpx",
    "httpcore",
    "boto3",
    "botocore.session",
    "botocore.client",
    "tollway.cli",
    "tollway.commands",
    "tollway.dev",
    "tollway.tools",
    "tollway.usage",
    "tollway.functions.usage",
    "tollway.config.models",
    "tollway.config.load",
]


def test_the_routers_init_loads_no_validation_models_http_client_boto3_cli_or_dev_tools(
    tmp_path: Path, serve, aws: dict[str, str]
) -> None:
    loaded = cold_start(tmp_path, serve, aws, auth=JWT)  # with a JWT issuer: JWKS on the path too
    assert "tollway.functions.router" in loaded  # the probe saw the adapter's imports
    assert sorted(set(NEVER_AT_INIT) & loaded) == []


def test_a_table_without_service_references_loads_no_discovery(
    tmp_path: Path, serve, aws: dict[str, str]
) -> None:
    loaded = cold_start(tmp_path, serve, aws)
    assert not {m for m in loaded if m.startswith("tollway.discovery.") and m != "tollway.table.targets"}


def test_the_key_secret_and_the_aws_callers_load_no_boto3_or_botocore(
    tmp_path: Path, serve, aws: dict[str, str]
) -> None:
    """The init reads the key secret (TOLLWAY_KEY_SECRET_ID, in the template's environment)
    and builds the DynamoDB and SQS callers from environment credentials, as on Lambda.

    The bare `botocore` package (its __init__, well under a millisecond) is still imported by
    Powertools' own package __init__ (aws_lambda_powertools.shared.user_agent, through the
    Logger): none of botocore's modules is."""
    assert aws["TOLLWAY_KEY_SECRET_ID"]
    loaded = cold_start(tmp_path, serve, aws)
    assert "boto3" not in loaded and "aws_lambda_powertools.utilities.parameters" not in loaded
    assert sorted(m for m in loaded if m.startswith("botocore.")) == []


def test_a_table_with_a_jwt_issuer_loads_pyjwt(tmp_path: Path, serve, aws: dict[str, str]) -> None:
    # The same probe sees the import when the table needs it: the tests above can fail.
    assert "jwt" in cold_start(tmp_path, serve, aws, auth=JWT)


def test_a_table_with_a_grpc_route_loads_grpc_and_protobuf_but_never_protoc(
    tmp_path: Path, serve, aws: dict[str, str]
) -> None:
    loaded = cold_start(tmp_path, serve, aws, grpc=True)
    assert {"grpc", "google.protobuf", "tollway.upstream.grpc"} <= loaded
    # The descriptors came with the table: no protoc, no YAML, no sources compiled. (`import
    # grpc` looks for the grpc_tools package where it is installed, as here, not in the layer.)
    assert not {"grpc_tools.protoc", "grpc_tools._protoc_compiler", "tollway.config.load"} & loaded
