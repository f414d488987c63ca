"""RouterFunction: the gateway app behind its Lambda adapter (tollway/functions/router.py),
built once per container."""

import os
from pathlib import Path

from tollway.functions.router import build

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

app, handler = build(os.environ, INFRA)
