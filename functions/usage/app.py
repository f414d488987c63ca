"""UsageFunction: SQS batches of usage events -> usage and billing totals, behind its Lambda
adapter (tollway/functions/usage.py), built once per container."""

import os
from pathlib import Path

from tollway.functions.usage import build

INFRA = Path(__file__).parent / "infra"

handler = build(os.environ, INFRA)
