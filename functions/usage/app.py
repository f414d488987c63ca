"""UsageFunction: SQS batches of usage events -> usage and billing totals, built once per container."""

import os
from pathlib import Path

from tollway.settings import Settings
from tollway.usage.consumer import build_handler

handler = build_handler(Settings.from_environ(os.environ, Path(__file__).parent / "infra"))
