"""PreTrafficHookFunction: checks a new router version before CodeDeploy shifts traffic to it."""

import os
from pathlib import Path

from tollway import aws
from tollway.deploy.hook import describe, lambda_invoker, run_hook
from tollway.observability import logger

INFRA = Path(__file__).parent / "infra"


def report(deployment: str, execution: str, status: str) -> None:
    aws.client("codedeploy", config=None).put_lifecycle_event_hook_execution_status(
        deploymentId=deployment, lifecycleEventHookExecutionId=execution, status=status
    )


def handler(event: dict, context: object) -> dict:
    if event.get("tollway") == "routes":
        return describe(os.environ, INFRA)
    invoke = lambda_invoker(aws.client("lambda", config=None))
    return {"status": run_hook(event, os.environ, INFRA, invoke=invoke, report=report, log=logger)}
