"""`tollway routes diff --stack NAME`: the local infra folder against the route table the
stack's pre-traffic hook function carries (the one deployed with its router). The stack is
moto's CloudFormation; the function, a built hook in a fresh interpreter behind a loopback
Invoke API (moto runs functions in Docker, which does not run here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.built import ROOT, FakeLambda, lambda_env
from tests.deployed import deploy


def deployed_hook(built, layer, containers, tmp_path: Path, edit=None):
    """The hook as deployed from an infra folder that `edit` changed, built the way build.mk builds it."""
    root = tmp_path / "deployed-hook"
    shutil.copytree(built["PreTrafficHookFunction"], root)
    infra = root / "infra"
    if edit is not None:
        edit(infra)
    argv = ["routes", "check", "--infra", str(infra), "--write-table", str(infra)]
    cli = [sys.executable, "-m", "tollway.cli", *argv]
    subprocess.run(cli, check=True, capture_output=True, cwd=tmp_path)
    return containers("app.handler", root, layer, lambda_env("CodeDeployHook_x", TOLLWAY_STAGE="dev"))


def older(infra: Path) -> None:
    """The deployed version: no chat route yet, users.get without a scope it now requires,
    and a route since deleted."""
    (infra / "routes" / "assistants.yaml").unlink()
    users = infra / "routes" / "users.yaml"
    users.write_text(
        users.read_text().replace("scopes: [users:read]", "scopes: []")
        + """
  - id: legacy.get
    path: /v0/users/{user_id}
    methods: [GET]
    public: true
    backends:
      - {name: user, service: users, path: "/users/{user_id}"}
"""
    )


def diff(
    tmp_path: Path, moto_url: str, fake: FakeLambda, stack: str, *flags: str
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOLLWAY_"))}
    env.update(
        AWS_ENDPOINT_URL=moto_url,
        AWS_ENDPOINT_URL_LAMBDA=fake.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    argv = ["routes", "diff", "--stack", stack, "--infra", str(ROOT / "infra"), *flags]
    return subprocess.run(
        [sys.executable, "-m", "tollway.cli", *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )


@pytest.fixture
def stack(moto_url: str) -> tuple[str, str]:
    name = f"tollway-{uuid.uuid4().hex[:8]}"
    hook = f"CodeDeployHook_{name}"
    deploy(moto_url, name, extra_outputs={"PreTrafficHookName": hook})
    return name, hook


def test_a_deploy_would_add_change_and_remove_these_routes(
    built, layer, containers, fake_lambda, moto_url, stack, tmp_path: Path
) -> None:
    name, hook = stack
    fake_lambda.containers[hook] = deployed_hook(built, layer, containers, tmp_path, older)
    done = diff(tmp_path, moto_url, fake_lambda, name, "--json")
    assert done.returncode == 1, done.stderr
    changes = json.loads(done.stdout)
    assert (changes["stack"], changes["stage"]) == (name, "dev")
    added = [{"id": "chat.completions", "methods": ["POST"], "path": "/v1/chat/completions"}]
    assert changes["added"] == added
    assert changes["removed"] == [{"id": "legacy.get", "methods": ["GET"], "path": "/v0/users/{user_id}"}]
    assert changes["changed"] == {"users.get": {"scopes": {"deployed": [], "local": ["users:read"]}}}
    assert [target for target, _ in fake_lambda.calls] == [hook]
    text = diff(tmp_path, moto_url, fake_lambda, name)
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        f"1 added, 1 changed, 1 removed against stack {name} (stage dev)",
        "+ chat.completions  POST /v1/chat/completions",
        '~ users.get         scopes: [] -> ["users:read"]',
        "- legacy.get        GET /v0/users/{user_id}",
    ]


def test_nothing_to_deploy(built, layer, containers, fake_lambda, moto_url, stack, tmp_path: Path) -> None:
    name, hook = stack
    fake_lambda.containers[hook] = deployed_hook(built, layer, containers, tmp_path)
    done = diff(tmp_path, moto_url, fake_lambda, name)
    assert (done.returncode, done.stdout) == (0, f"no route changes against stack {name} (stage dev)\n")


def test_a_function_that_does_not_answer_is_one_line(fake_lambda, moto_url, stack, tmp_path: Path) -> None:
    name, hook = stack  # no container behind the name: Lambda answers ResourceNotFoundException
    done = diff(tmp_path, moto_url, fake_lambda, name)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("tollway routes diff: AWS refused Invoke: ResourceNotFoundException")


def test_diff_needs_a_stack(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tollway.cli", "routes", "diff"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2 and "the following arguments are required: --stack" in done.stderr
