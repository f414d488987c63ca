"""RouterFunction: Mangum around the Tollway ASGI app, built once per container."""

import os
from pathlib import Path

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
from tollway.assemble import build_app
from tollway.settings import Settings
from tollway.usage import extension

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

app = build_app(Settings.from_environ(os.environ, INFRA))
# Problem details are text too: without this Mangum would base64 them.
mangum = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"])
# On Lambda, usage events are flushed by an internal extension after each response.
handler = extension.attach(mangum, app.gateway.usage, runtime_api=os.environ.get("AWS_LAMBDA_RUNTIME_API"))
