"""The pre-traffic hook of a router deploy (template.yaml `PreTrafficHookFunction`).

CodeDeploy calls it with `{"DeploymentId", "LifecycleEventHookExecutionId"}` after the new
version is published and before the `live` alias sends it any traffic. It loads the route
table this build compiled (the router's own, built by the same `sam build`), invokes the new
version (`TOLLWAY_TARGET_VERSION`, its ARN) once per route with a synthetic request
(deploy/probes.py), and reports `Succeeded` only when the table loaded and every route
answered below 500; otherwise `Failed`, and CodeDeploy rolls the deploy back with no
traffic shifted. The status is always reported, whatever went wrong: a hook that never
answers leaves the deploy waiting for an hour.

Called with `{"tollway": "routes"}` instead, it answers the summary of the table it carries
(`tollway routes diff --stack NAME`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollway.config import artifact
from tollway.deploy.probes import Probe, probes
from tollway.deploy.routes import summary
from tollway.table.routes import CompiledConfig

# Probes run side by side: a deploy should not wait a second per route.
PARALLEL = 8

Invoke = Callable[[str, dict[str, Any]], "Answer"]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None  # None: no HTTP answer (the invocation itself failed)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    lines: list[str]  # one per failed probe or problem, for the log


def load_table(infra: Path, stage: str) -> CompiledConfig:
    """The table the build compiled; a missing or stale one fails the deploy (TableStale)."""
    return artifact.load(infra, stage, {})


def check(config: CompiledConfig, target: str, invoke: Invoke, deployment: str = "local") -> Verdict:
    """Every route's probe against `target`; passed when every answer is below 500."""
    chosen = probes(config)

    def run(numbered: tuple[int, Probe]) -> tuple[Probe, Answer]:
        n, probe = numbered
        return probe, invoke(target, probe.event(f"pretraffic-{deployment}-{n}"))

    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(run, enumerate(chosen)))
    lines = [
        f"route {p.route_id}: {p.method} {p.path} -> "
        + (f"{a.status}" if a.status is not None else f"invocation failed: {a.error}")
        for p, a in answers
        if a.status is None or a.status >= 500
    ]
    return Verdict(not lines and bool(chosen), lines or ([] if chosen else ["the route table has no routes"]))


def lambda_invoker(client: Any) -> Invoke:
    """Invoke a Lambda version with an event; its HTTP status, or why there is none."""

    def invoke(target: str, event: dict[str, Any]) -> Answer:
        try:
            answer = client.invoke(FunctionName=target, Payload=json.dumps(event).encode())
            payload = json.loads(answer["Payload"].read() or b"null")
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer fails the probe
            return Answer(None, f"{type(exc).__name__}: {exc}".splitlines()[0])
        if answer.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else None
            return Answer(None, f"{answer['FunctionError']}: {message or payload}"[:300])
        status = payload.get("statusCode") if isinstance(payload, dict) else None
        if not isinstance(status, int):
            return Answer(None, "the answer has no statusCode")
        return Answer(status)

    return invoke


def run_hook(
    event: Mapping[str, Any],
    environ: Mapping[str, str],
    infra: Path,
    *,
    invoke: Invoke,
    report: Callable[[str, str, str], None],
    log: Any,
) -> str:
    """One lifecycle event: check, then report the status to CodeDeploy (always); the status."""
    deployment = str(event.get("DeploymentId", "local"))
    status = "Failed"
    try:
        config = load_table(infra, environ.get("TOLLWAY_STAGE", "dev"))
        verdict = check(config, environ["TOLLWAY_TARGET_VERSION"], invoke, deployment)
        status = "Succeeded" if verdict.passed else "Failed"
        for line in verdict.lines:
            log.error(f"pre-traffic check failed: {line}")
        log.info(
            "pre-traffic check",
            extra={"status": status, "routes": len(config.routes), "failed": len(verdict.lines)},
        )
    except Exception as exc:  # noqa: BLE001 - whatever it is, the deploy must not go ahead
        log.exception(f"pre-traffic check could not run: {type(exc).__name__}: {exc}")
    finally:
        report(deployment, str(event.get("LifecycleEventHookExecutionId", "")), status)
    return status


def describe(environ: Mapping[str, str], infra: Path) -> dict[str, Any]:
    """The table this build carries, for `tollway routes diff`."""
    stage = environ.get("TOLLWAY_STAGE", "dev")
    return {"stage": stage, "routes": summary(load_table(infra, stage))}
