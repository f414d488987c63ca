"""RouterFunction: the Tollway ASGI app under Mangum, built once per container."""

import os
from pathlib import Path

from tollway.assemble import after_response, build_app
from tollway.config.artifact import load_or_compile
from tollway.http.lambda_adapter import lambda_handler
from tollway.observability import logger
from tollway.settings import Settings
from tollway.snapstart import register
from tollway.usage import extension

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

settings = Settings.from_environ(os.environ, INFRA)
# The route table `sam build` compiled (no YAML, no pydantic at init); the sources if it is stale.
app = build_app(settings, config=load_or_compile(INFRA, settings.stage, settings.environ, log=logger))
# Under SnapStart, every container restored from the snapshot of this init renews its
# credentials, connections, JWKS, discovery and random seed first (tollway/snapstart.py).
register(app.renewal)
# On Lambda, quota settles and usage events are flushed by an internal extension after each response.
handler = extension.attach(
    lambda_handler(app), after_response(app), runtime_api=os.environ.get("AWS_LAMBDA_RUNTIME_API")
)
