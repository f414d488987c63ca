"""RouterFunction's Lambda adapter: everything the router does only because it runs on Lambda.

    app, handler = build(os.environ, infra)        # functions/router/app.py, once per container

A container's init reads the settings from the environment, loads the route table `sam build`
compiled (tollway.config.artifact: no YAML, no pydantic), and builds the app
(tollway.assemble). What wraps the app here, innermost first:

- the event translation (tollway.functions.http_api): HTTP API v2 events to ASGI and back,
  through Mangum, with the event reader that answers a malformed event with a 400 problem
  and the 6 MB limit on a response;
- the internal extension (tollway.functions.extension): on Lambda the app runs without
  lifespan, so its background flushers never start; the extension flushes quota settles,
  then usage events, after each response, while the caller already has it;
- the request id and cold-start flag on every log line of an invocation.

And once: under SnapStart, each container restored from the snapshot of this init renews
what the init made (`app.renewal`, tollway.snapstart), through the runtime's after-restore
hook.

Under uvicorn (`tollway dev`, the bench's workers) none of this runs: the same app serves with
its lifespan on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tollway.assemble import build_app
from tollway.config.artifact import load_or_compile
from tollway.functions import extension
from tollway.functions.http_api import LambdaHandler, lambda_handler
from tollway.http.app import GatewayApp
from tollway.observability import logger, with_lambda_context
from tollway.settings import Settings


def build(environ: Mapping[str, str], infra: Path) -> tuple[GatewayApp, LambdaHandler]:
    """The container's app and the handler Lambda calls."""
    settings = Settings.from_environ(environ, infra)
    # The route table `sam build` compiled; the sources if it is stale.
    config = load_or_compile(infra, settings.stage, settings.environ, log=logger)
    # Backends join the invocation's X-Ray trace: the runtime sets _X_AMZN_TRACE_ID per
    # invocation, in the process environment (os.environ: `environ` is read at init only).
    app = build_app(settings, config=config, runtime_trace=lambda: os.environ.get("_X_AMZN_TRACE_ID"))
    register_after_restore(app.renewal)
    flushed = extension.attach(
        lambda_handler(app), after_response(app), runtime_api=environ.get("AWS_LAMBDA_RUNTIME_API")
    )
    return app, with_lambda_context(flushed)


def after_response(app: GatewayApp) -> extension.Flusher | None:
    """What the extension flushes after each response: quota settles, then usage events."""
    admission = app.gateway.admission
    settlements = getattr(admission, "settlements", None)  # a QuotaAdmission's; tests inject others
    return extension.chain(settlements, app.gateway.usage)  # type: ignore[arg-type]


def register_after_restore(renewal: Callable[[], Any]) -> bool:
    """Register `renewal` with the runtime's after-restore hooks; False where the package is
    missing (the layer ships it; a function that is never snapshotted never calls it)."""
    try:
        from snapshot_restore_py import register_after_restore as register
    except ImportError:
        return False
    register(renewal)
    return True
