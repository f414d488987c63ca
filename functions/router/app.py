"""RouterFunction: Mangum around the Tollway ASGI app, built once per container."""

import os
from pathlib import Path

from mangum import Mangum
from tollway.assemble import build_app
from tollway.settings import Settings

app = build_app(Settings.from_environ(os.environ, Path(__file__).parent / "infra"))
handler = Mangum(app, lifespan="off")
