"""RouterFunction: Mangum around the Tollway ASGI app, built once per container."""

import os
from pathlib import Path

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from tollway.assemble import build_app
from tollway.settings import Settings

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

app = build_app(Settings.from_environ(os.environ, INFRA))
# Problem details are text too: without this Mangum would base64 them.
handler = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"])
