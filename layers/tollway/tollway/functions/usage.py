"""UsageFunction's Lambda adapter: SQS batches of usage messages in, batch item failures out.

    handler = build(os.environ, infra)        # functions/usage/app.py, once per container

The work is tollway.usage.consumer (each message validated, the batch recorded once by
tollway.usage.billing's Ledger); this module builds it for one container: the plans' prices
from the route table `sam build` compiled, the usage table from the settings, one boto3
DynamoDB client. The usage function is off the request path: botocore's cost is paid once
per batch, and pydantic validates what the routers sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tollway.config.artifact import load_or_compile
from tollway.observability import logger, with_lambda_context
from tollway.settings import Settings
from tollway.usage.consumer import UsageConsumer

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def build(environ: Mapping[str, str], infra: Path) -> LambdaHandler:
    """The handler Lambda calls."""
    settings = Settings.from_environ(environ, infra)
    # The plans from the route table `sam build` compiled; from the sources if it is stale.
    config = load_or_compile(infra, settings.stage, settings.environ, log=logger)
    return with_lambda_context(build_handler(settings, config=config))


def build_handler(settings: Settings, dynamodb: Any = None, config: Any = None) -> LambdaHandler:
    """The consumer's handler: plans from infra (or `config`, the built route table of the
    stage), the table from settings, one client (`dynamodb`, or boto3's)."""
    from tollway import aws
    from tollway.usage.billing import Ledger, prices

    if not settings.usage_table:
        raise ValueError("TOLLWAY_USAGE_TABLE is not set")
    if config is None:
        from tollway.config.compile import compile_infra

        config = compile_infra(Path(settings.infra), settings.stage, settings.environ)
    ledger = Ledger(dynamodb or aws.client("dynamodb"), settings.usage_table, prices(config.plans))
    return UsageConsumer(ledger).handle
