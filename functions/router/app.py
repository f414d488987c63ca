"""RouterFunction: the Tollway ASGI app under Mangum, built once per container."""

import os
from pathlib import Path

from tollway.assemble import after_response, build_app
from tollway.config.artifact import load_or_compile
from tollway.http.lambda_adapter import lambda_handler
from tollway.observability import logger, with_lambda_context
from tollway.settings import Settings
from tollway.snapstart import register
from tollway.usage import extension

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

settings = Settings.from_environ(os.environ, INFRA)
# The route table `sam build` compiled (no YAML, no pydantic at init); the sources if it is stale.
config = load_or_compile(INFRA, settings.stage, settings.environ, log=logger)
# Backends join the invocation's X-Ray trace: the runtime sets _X_AMZN_TRACE_ID per invocation.
app = build_app(settings, config=config, runtime_trace=lambda: os.environ.get("_X_AMZN_TRACE_ID"))
# Under SnapStart, every container restored from the snapshot of this init renews its
# credentials, connections, JWKS, discovery and random seed first (tollway/snapstart.py).
register(app.renewal)
# On Lambda, quota settles and usage events are flushed by an internal extension after each response.
flushed = extension.attach(
    lambda_handler(app), after_response(app), runtime_api=os.environ.get("AWS_LAMBDA_RUNTIME_API")
)
# Every log line of an invocation carries its request id and cold-start flag.
handler = with_lambda_context(flushed)
