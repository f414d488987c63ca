"""UsageTrueUpFunction: every 5 minutes, the quota counters copied into the usage records, so that
no bill depends on an event arriving (tollway.usage.trueup). Built once per container."""

import os
from pathlib import Path

from tollway.config.artifact import load_or_compile
from tollway.observability import logger
from tollway.settings import Settings
from tollway.usage.trueup import build_true_up

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

settings = Settings.from_environ(os.environ, INFRA)
# The plans' prices from the route table `sam build` compiled; from the sources if it is stale.
true_up = build_true_up(settings, config=load_or_compile(INFRA, settings.stage, settings.environ, log=logger))


def handler(event: dict, context: object) -> dict:
    result = true_up.run()
    return {"counters": result.counters, "written": result.written, "unpriced": result.unpriced}
