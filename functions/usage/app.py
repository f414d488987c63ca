"""UsageFunction: SQS batches of usage events -> usage and billing totals, built once per container."""

import os
from pathlib import Path

from tollway.config.artifact import load_or_compile
from tollway.observability import logger, with_lambda_context
from tollway.settings import Settings
from tollway.usage.consumer import build_handler

INFRA = Path(__file__).parent / "infra"

settings = Settings.from_environ(os.environ, INFRA)
# The plans from the route table `sam build` compiled; from the sources if it is stale.
handler = with_lambda_context(
    build_handler(settings, config=load_or_compile(INFRA, settings.stage, settings.environ, log=logger))
)
