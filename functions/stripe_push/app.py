"""StripePushFunction (optional, on a schedule): each consumer's units to Stripe meter events."""

import os
from pathlib import Path

from tollway.config.artifact import load_or_compile
from tollway.observability import logger
from tollway.settings import Settings
from tollway.usage.push import build_handler

INFRA = Path(os.environ.get("TOLLWAY_INFRA_DIR") or Path(__file__).parent / "infra")

settings = Settings.from_environ(os.environ, INFRA)
# The plans (and their Stripe meters) from the route table `sam build` compiled.
handler = build_handler(settings, config=load_or_compile(INFRA, settings.stage, settings.environ, log=logger))
