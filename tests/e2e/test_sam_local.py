"""`sam local start-api --env-vars env.local.json` beside a running `tollway dev`: the env
file's endpoints reach every table, queue and secret the functions use, and the built router
answers as `sam local` would call it. Docker does not run here, so the function runs the way
the Lambda runtime in sam local's container runs it: the built folder (.aws-sam/build) and the
layer alone on sys.path of a fresh interpreter (tests/lambda_host.py), given the env file's
variables and an HTTP API v2 event.

The env file names the host as containers see it (`host.docker.internal`) and the emulator's
default port 4566; this test's `tollway dev` listens on a free port, so both are substituted.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from tollway.dev.template import Intrinsic, read_template

from tests.built import lambda_env
from tests.e2e.conftest import ROOT, DevServer

pytestmark = pytest.mark.e2e
RESOURCE_TYPES = {
    "AWS::DynamoDB::Table": "table",
    "AWS::SQS::Queue": "queue",
    "AWS::SecretsManager::Secret": "secret",
}


def env_file(dev_server: DevServer) -> dict[str, dict[str, str]]:
    text = (ROOT / "env.local.json").read_text()
    text = text.replace("host.docker.internal:4566", dev_server.aws_url.removeprefix("http://"))
    return json.loads(text)


def resources_used(function: str) -> dict[str, str]:
    """The variables through which `function` finds a table, queue or secret, and each one's kind."""
    template = read_template(ROOT / "template.yaml")
    resources = template["Resources"]
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    variables.update(resources[function]["Properties"].get("Environment", {}).get("Variables", {}))
    used = {}
    for name, value in variables.items():
        if isinstance(value, Intrinsic) and value.tag in ("Ref", "GetAtt"):
            target = resources.get(str(value.value).split(".")[0], {})
            if target.get("Type") in RESOURCE_TYPES:
                used[name] = RESOURCE_TYPES[target["Type"]]
    return used


def client(service: str, env: dict[str, str]) -> Any:
    endpoint = env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env["AWS_ENDPOINT_URL"]
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def test_the_env_file_covers_every_function_sam_local_serves() -> None:
    template = read_template(ROOT / "template.yaml")
    served = {
        name
        for name, r in template["Resources"].items()
        if any(e["Type"] == "HttpApi" for e in r.get("Properties", {}).get("Events", {}).values())
    }
    assert served <= set(json.loads((ROOT / "env.local.json").read_text()))


@pytest.mark.parametrize("function", ["RouterFunction", "UsageFunction"])
def test_the_env_file_endpoints_answer_for_every_table_queue_and_secret(
    dev_server: DevServer, function: str
) -> None:
    env = env_file(dev_server)[function]
    used = resources_used(function)
    assert used, function
    assert set(used) <= set(env), f"env.local.json lacks {set(used) - set(env)} for {function}"
    for variable, kind in used.items():
        if kind == "table":
            assert client("dynamodb", env).describe_table(TableName=env[variable])["Table"]["TableStatus"]
        elif kind == "queue":
            sqs = client("sqs", env)
            attributes = sqs.get_queue_attributes(QueueUrl=env[variable], AttributeNames=["QueueArn"])
            assert attributes["Attributes"]["QueueArn"].endswith(":UsageQueue")
        else:
            secrets = client("secretsmanager", env)
            assert secrets.describe_secret(SecretId=env[variable])["Name"] == "KeySecret"


def test_a_usage_event_sent_where_the_env_file_says_is_billed_by_tollway_dev(dev_server: DevServer) -> None:
    env = env_file(dev_server)["RouterFunction"]
    consumer = f"samlocal-{uuid.uuid4().hex[:6]}"
    event = {
        "version": 1,
        "event_id": uuid.uuid4().hex,
        "timestamp": datetime.now(UTC).isoformat(),
        "request_id": "r1",
        "consumer_id": consumer,
        "plan": "free",
        "route_id": "users.get",
        "method": "GET",
        "status": 200,
        "latency_ms": 2.0,
        "request_bytes": 0,
        "response_bytes": 10,
        "cost_units": 1,
        "admitted": True,
        "backends": [],
    }
    client("sqs", env).send_message(QueueUrl=env["TOLLWAY_USAGE_QUEUE_URL"], MessageBody=json.dumps(event))
    month = datetime.now(UTC).strftime("%Y-%m")
    deadline = time.monotonic() + 30
    while True:
        done = dev_server.tollway("usage", "report", "--period", month, "--consumer", consumer, "--json")
        if done.returncode == 0 and json.loads(done.stdout)["requests"] == 1:
            break
        assert time.monotonic() < deadline, done.stdout + done.stderr
        time.sleep(0.5)


def test_the_built_router_answers_as_sam_local_calls_it(
    dev_server: DevServer, built: dict[str, Path], layer: list[Path], containers
) -> None:
    # sam local passes only the variables the template declares: the env file's, nothing else.
    # The demo services listen where this test's `tollway dev` put them (not 9101-9104).
    variables = {**env_file(dev_server)["RouterFunction"], **dev_server.services}
    env = lambda_env("RouterFunction", **variables)
    router = containers("app.handler", built["RouterFunction"], layer, env)
    assert router.init_error is None, router.logs()
    event = json.loads((ROOT / "tests" / "events" / "http_api_v2_get.json").read_text())
    answer = router.invoke(event)["result"]
    assert (answer["statusCode"], json.loads(answer["body"])) == (200, {"status": "ok"}), answer
    created = dev_server.tollway(
        "keys", "create", "--consumer", "sam", "--plan", "free", "--scopes", "users:read", "--json",
        "--infra", str(ROOT / "infra"),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/users/1"
    event["headers"]["x-api-key"] = key
    answer = router.invoke(event)["result"]
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["name"] == "Ada Lovelace"
    assert answer["headers"]["ratelimit-policy"]
    assert "route table not used" not in router.logs()  # the table sam build compiled was loaded
