"""The pre-traffic hook (tollway/deploy/hook.py), built by `sam build`'s recipe and run in a
fresh interpreter, checking a built router running against the emulator: it passes a good
version, and fails the deploy on a 5xx, on a version whose init fails and on a table that
does not load — reporting the status to CodeDeploy every time."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tollway.config import artifact
from tollway.deploy.probes import probes

from tests.built import Container, FakeCodeDeploy, FakeLambda, lambda_env

TARGET = "arn:aws:lambda:us-east-1:123456789012:function:tollway-RouterFunction-x1:7"
EVENT = {"DeploymentId": "d-TEST1", "LifecycleEventHookExecutionId": "exec-1"}


def start_router(containers, built, layer, aws, **overrides: str) -> Container:
    """The built router with the template's variables, resolved against the emulator."""
    variables = {
        **aws,
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],  # the moto server (tests/conftest.py)
        "TOLLWAY_DEV_JWT_SECRET": "a-secret-of-at-least-32-bytes-long!",
        **overrides,
    }
    env = lambda_env("tollway-RouterFunction-x1", **variables)
    return containers("app.handler", built["RouterFunction"], layer, env)


def run_hook(
    containers, hook_root: Path, layer, fake_lambda: FakeLambda, fake_codedeploy: FakeCodeDeploy
) -> tuple[dict, Container]:
    env = lambda_env(
        "CodeDeployHook_tollway",
        TOLLWAY_STAGE="dev",
        TOLLWAY_TARGET_VERSION=TARGET,
        AWS_ENDPOINT_URL_LAMBDA=fake_lambda.url,
        AWS_ENDPOINT_URL_CODEDEPLOY=fake_codedeploy.url,
    )
    hook = containers("app.handler", hook_root, layer, env)
    return hook.invoke(EVENT), hook


def test_a_good_version_passes_after_every_route_answered(
    built, layer, aws, demo_services, containers, fake_lambda, fake_codedeploy
) -> None:
    fake_lambda.containers["tollway-RouterFunction-x1"] = start_router(
        containers, built, layer, aws, **demo_services
    )
    answer, hook = run_hook(containers, built["PreTrafficHookFunction"], layer, fake_lambda, fake_codedeploy)
    assert answer == {"result": {"status": "Succeeded"}, "request_id": answer["request_id"]}, hook.logs()
    assert fake_codedeploy.statuses == [("d-TEST1", "exec-1", "Succeeded")]
    # One synthetic request per route of the built table, all to the new version.
    table = artifact.load(built["RouterFunction"] / "infra", "dev", {})
    assert {target for target, _ in fake_lambda.calls} == {TARGET}
    probed = sorted((e["requestContext"]["http"]["method"], e["rawPath"]) for _, e in fake_lambda.calls)
    assert probed == sorted((p.method, p.path) for p in probes(table))
    assert len(fake_lambda.calls) == len(table.routes) >= 4


async def failing(scope, receive, send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"oops"})


def test_a_version_that_answers_5xx_fails_the_deploy(
    built, layer, aws, demo_services, containers, fake_lambda, fake_codedeploy, serve: Callable[..., str]
) -> None:
    broken = {**demo_services, "TOLLWAY_SERVICE_USERS": serve(failing)}  # the public /v1/status: 502
    router = start_router(containers, built, layer, aws, **broken)
    fake_lambda.containers["tollway-RouterFunction-x1"] = router
    answer, hook = run_hook(containers, built["PreTrafficHookFunction"], layer, fake_lambda, fake_codedeploy)
    assert answer["result"] == {"status": "Failed"}
    assert fake_codedeploy.statuses == [("d-TEST1", "exec-1", "Failed")]
    assert "pre-traffic check failed: route status: GET /v1/status -> 502" in hook.logs()


def test_a_version_whose_init_fails_fails_the_deploy(
    built, layer, aws, demo_services, containers, fake_lambda, fake_codedeploy
) -> None:
    bad = {**demo_services, "TOLLWAY_SERVICE_USERS": "ftp://nowhere"}  # refused at init
    router = start_router(containers, built, layer, aws, **bad)
    assert router.init_error is not None
    fake_lambda.containers["tollway-RouterFunction-x1"] = router
    answer, hook = run_hook(containers, built["PreTrafficHookFunction"], layer, fake_lambda, fake_codedeploy)
    assert answer["result"] == {"status": "Failed"}
    assert fake_codedeploy.statuses == [("d-TEST1", "exec-1", "Failed")]
    assert "invocation failed: Unhandled" in hook.logs()


@pytest.mark.parametrize("damage", ["stale", "missing"])
def test_a_table_that_does_not_load_fails_the_deploy_and_is_still_reported(
    built, layer, aws, demo_services, containers, fake_lambda, fake_codedeploy, tmp_path: Path, damage: str
) -> None:
    fake_lambda.containers["tollway-RouterFunction-x1"] = start_router(
        containers, built, layer, aws, **demo_services
    )
    hook_root = tmp_path / "hook"
    shutil.copytree(built["PreTrafficHookFunction"], hook_root)
    table = hook_root / "infra" / artifact.TABLE_NAME
    if damage == "stale":
        plans = hook_root / "infra" / "plans.yaml"
        plans.write_text(plans.read_text() + "\n")  # an infra file changed after the table was written
    else:
        table.unlink()
    answer, hook = run_hook(containers, hook_root, layer, fake_lambda, fake_codedeploy)
    assert answer["result"] == {"status": "Failed"}
    assert fake_codedeploy.statuses == [("d-TEST1", "exec-1", "Failed")]
    assert "pre-traffic check could not run: TableStale" in hook.logs()
    assert fake_lambda.calls == []
