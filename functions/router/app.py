"""RouterFunction: the Tollway ASGI app under Mangum, built once per container."""

import os
from pathlib import Path

from tollway.assemble import after_response, build_app
from tollway.http.lambda_adapter import lambda_handler
from tollway.settings import Settings
from tollway.usage import extension

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

app = build_app(Settings.from_environ(os.environ, INFRA))
# On Lambda, quota settles and usage events are flushed by an internal extension after each response.
handler = extension.attach(
    lambda_handler(app), after_response(app), runtime_api=os.environ.get("AWS_LAMBDA_RUNTIME_API")
)
