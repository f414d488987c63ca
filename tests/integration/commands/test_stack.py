"""`tollway keys|usage ... --stack NAME`: the names come from the stack's outputs (moto's
CloudFormation on loopback), and every failure is one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from tollway.dev.serve import free_port
from tollway.recording.emitter import UnsentLog

from tests.deployed import ROOT, deploy

INFRA = str(ROOT / "infra")
EVENT = {
    "version": 1,
    "event_id": uuid.uuid4().hex,
    "timestamp": "2026-11-05T10:00:00Z",
    "request_id": "r1",
    "consumer_id": "acme",
    "plan": "pro",
    "route_id": "users.get",
    "method": "GET",
    "status": 200,
    "latency_ms": 3.5,
    "request_bytes": 0,
    "response_bytes": 10,
    "cost_units": 1,
    "admitted": True,
    "backends": [],
}


@pytest.fixture
def stack(moto_url: str) -> tuple[str, dict[str, str]]:
    name = f"tollway-{uuid.uuid4().hex[:8]}"
    return name, deploy(moto_url, name)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no table names, no profile files, and never the instance metadata service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOLLWAY_"))}
    env.update({"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null"})
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    env.update(extra)
    return env


def aws_env(tmp_path: Path, moto_url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path,
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        **extra,
    )


def tollway(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tollway.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_error(done: subprocess.CompletedProcess, code: int = 1) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def stale_dev_env(folder: Path) -> None:
    """What `tollway dev` leaves behind once it has stopped: its emulator is gone."""
    (folder / ".tollway").mkdir()
    (folder / ".tollway" / "dev.env").write_text(
        f"AWS_ENDPOINT_URL=http://127.0.0.1:{free_port()}\nTOLLWAY_KEYS_TABLE=KeysTable\n"
        "AWS_ACCESS_KEY_ID=dev\nAWS_SECRET_ACCESS_KEY=dev\nAWS_DEFAULT_REGION=us-east-1\n"
        "TOLLWAY_USAGE_TABLE=UsageTable\nTOLLWAY_QUOTA_TABLE=QuotaTable\n"
    )


def test_keys_are_issued_listed_and_revoked_in_the_stack_s_table(
    stack: tuple[str, dict[str, str]], moto_url: str, tmp_path: Path
) -> None:
    name, outputs = stack
    stale_dev_env(tmp_path)  # --stack wins over a dev.env in the folder
    env = aws_env(tmp_path, moto_url)
    created = tollway(
        tmp_path, env, "keys", "create", "--stack", name, "--consumer", "acme", "--plan", "pro",
        "--infra", INFRA, "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    items = boto3.client("dynamodb", endpoint_url=moto_url).scan(TableName=outputs["KeysTableName"])["Items"]
    assert [i["key_id"]["S"] for i in items] == [key["key_id"]]
    # Signed under the stack's secret, as the router will check it.
    from tollway.auth.secret import load_key_mac

    assert load_key_mac(outputs["KeySecretId"], os.environ).key_id(key["key"]) == key["key_id"]
    listed = tollway(tmp_path, env, "keys", "list", "--stack", name, "--json")
    assert [k["key_id"] for k in json.loads(listed.stdout)["keys"]] == [key["key_id"]]
    revoked = tollway(tmp_path, env, "keys", "revoke", key["key_id"], "--stack", name)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout


def test_usage_commands_read_the_stack_s_tables_and_queue(
    stack: tuple[str, dict[str, str]], moto_url: str, tmp_path: Path
) -> None:
    name, outputs = stack
    env = aws_env(tmp_path, moto_url)
    month = datetime.now(UTC).strftime("%Y-%m")
    report = tollway(tmp_path, env, "usage", "report", "--stack", name, "--period", month, "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["consumers"] == []
    reconciled = tollway(tmp_path, env, "usage", "reconcile", "--stack", name, "--period", month)
    assert reconciled.returncode == 0, reconciled.stderr
    log = tmp_path / "router.log"
    UnsentLog(log.open("w")).write(EVENT, "test")
    replayed = tollway(tmp_path, env, "usage", "replay", str(log), "--stack", name)
    assert replayed.returncode == 0 and replayed.stdout.startswith("replayed 1 event(s)"), replayed
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    (message,) = sqs.receive_message(QueueUrl=outputs["UsageQueueUrl"])["Messages"]
    assert json.loads(message["Body"])["event_id"] == EVENT["event_id"]


def test_an_unknown_stack_is_one_line(moto_url: str, tmp_path: Path) -> None:
    done = tollway(tmp_path, aws_env(tmp_path, moto_url), "keys", "list", "--stack", "no-such-stack")
    assert one_line_error(done) == (
        "tollway keys list: no stack 'no-such-stack' in us-east-1 (check --stack and --region)"
    )


def test_a_stack_without_the_output_says_which(moto_url: str, tmp_path: Path) -> None:
    name = f"other-{uuid.uuid4().hex[:8]}"
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_url)
    body = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Other": {"Value": "x"}}}
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(body))
    done = tollway(tmp_path, aws_env(tmp_path, moto_url), "keys", "list", "--stack", name)
    assert "has no output KeysTableName" in one_line_error(done)


def test_region_flag_is_used(stack: tuple[str, dict[str, str]], moto_url: str, tmp_path: Path) -> None:
    name, _ = stack
    env = aws_env(tmp_path, moto_url)
    # Stacks live in a region: the same name is not found in another one.
    done = tollway(tmp_path, env, "keys", "list", "--stack", name, "--region", "eu-west-1")
    assert "no stack" in one_line_error(done) and "eu-west-1" in done.stderr
    env.pop("AWS_DEFAULT_REGION")
    assert tollway(tmp_path, env, "keys", "list", "--stack", name, "--region", "us-east-1").returncode == 0


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["keys", "list"], "tollway keys list"),
        (["usage", "report", "--period", "2026-11"], "tollway usage report"),
        (["usage", "reconcile", "--period", "2026-11"], "tollway usage reconcile"),
    ],
)
def test_failures_are_one_line_and_non_zero(
    moto_url: str, tmp_path: Path, command: list[str], prefix: str
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    cases = {
        "no credentials": (
            clean_env(tmp_path, AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=moto_url),
            ["--stack", "any"],
        ),
        "no region": (
            clean_env(tmp_path, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"),
            ["--stack", "any"],
        ),
        "unknown profile": (aws_env(tmp_path, moto_url), ["--profile", "nope"]),
        "unreachable": (
            aws_env(
                tmp_path,
                unreachable,
                TOLLWAY_KEYS_TABLE="K",
                TOLLWAY_USAGE_TABLE="U",
                TOLLWAY_QUOTA_TABLE="Q",
            ),
            [],
        ),
    }
    with ThreadPoolExecutor(len(cases)) as pool:  # a second or more each: side by side
        runs = {case: (tmp_path, env, *command, *flags) for case, (env, flags) in cases.items()}
        done = {case: pool.submit(tollway, *run) for case, run in runs.items()}
    said = {case: one_line_error(future.result()) for case, future in done.items()}
    assert all(line.startswith(prefix + ": ") for line in said.values()), said
    assert "no AWS credentials" in said["no credentials"] and "--profile" in said["no credentials"]
    assert "no AWS region: pass --region R" in said["no region"]
    assert "(nope)" in said["unknown profile"] and "--profile" in said["unknown profile"]
    assert f"cannot reach {unreachable}" in said["unreachable"]


@pytest.mark.parametrize("command", [["keys", "list"], ["usage", "report", "--period", "2026-11"]])
def test_a_stale_dev_env_is_named(tmp_path: Path, command: list[str]) -> None:
    stale_dev_env(tmp_path)
    line = one_line_error(tollway(tmp_path, clean_env(tmp_path), *command))
    assert ".tollway/dev.env points at the dev emulator" in line and "start `tollway dev`" in line
