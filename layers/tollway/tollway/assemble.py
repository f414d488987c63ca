"""Wire one container's gateway: compile config, create clients once, build the app.

Everything created here lives as long as the container: the HTTP client (backends,
JWKS and DynamoDB quota calls share its pool), one boto3 DynamoDB client (key lookups,
and the endpoint and credentials of the quota calls), the SQS client of the usage
emitter, and the discovery resolvers.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import httpx

from tollway import aws
from tollway.auth.authenticator import build_authenticator
from tollway.config.compile import compile_infra
from tollway.discovery.directory import build_directory, references
from tollway.http.app import GatewayApp
from tollway.observability import access_log
from tollway.pipeline import Gateway, UsageRecorder
from tollway.settings import Settings
from tollway.upstream.client import make_client
from tollway.upstream.dispatch import HttpUpstream
from tollway.usage.extension import Flusher, chain

if TYPE_CHECKING:
    from tollway.quota.admission import QuotaAdmission


def build_app(settings: Settings, *, http_client: httpx.AsyncClient | None = None) -> GatewayApp:
    config = compile_infra(settings.infra, settings.stage, settings.environ)
    client = http_client or make_client()
    dynamodb = cache(lambda: aws.client("dynamodb"))  # created only if a table needs it
    on_startup: list = []
    on_shutdown: list = [client.aclose]

    authenticator = build_authenticator(
        config, settings, client, dynamodb=dynamodb() if settings.keys_table else None
    )
    admission = _admission(settings, config, client, dynamodb) if settings.quota_table else None
    if admission is not None:
        # Metered routes settle after the response: in tasks under uvicorn (this hook runs
        # only with lifespan on); on Lambda the usage extension flushes them.
        on_startup.append(admission.settlements.start)
        on_shutdown.insert(0, admission.settlements.stop)
    usage = _usage(settings, on_startup, on_shutdown) if settings.usage_queue_url else None
    refs = references(config)
    directory = build_directory(refs, aws.client) if refs else None

    gateway = Gateway(
        config,
        authenticator=authenticator,
        upstream=HttpUpstream(client, directory=directory),
        admission=admission,
        usage=usage,
        access_log=access_log,
    )
    return GatewayApp(gateway, on_startup=on_startup, on_shutdown=on_shutdown)


def after_response(app: GatewayApp) -> Flusher | None:
    """What the Lambda extension flushes after each response: quota settles, then usage events."""
    admission = app.gateway.admission
    settlements = getattr(admission, "settlements", None)  # a QuotaAdmission's; tests inject others
    return chain(settlements, app.gateway.usage)  # type: ignore[arg-type]


def _admission(settings: Settings, config: Any, client: httpx.AsyncClient, dynamodb: Any) -> QuotaAdmission:
    from tollway.dynamo import DynamoCaller
    from tollway.quota.admission import QuotaAdmission
    from tollway.quota.store import QuotaStore

    # The boto3 client only lends its endpoint, region and credentials; calls go through
    # the shared HTTP client's pool (see tollway.dynamo).
    caller = DynamoCaller.from_client(client, dynamodb())
    metered = any(route.metering is not None for route in config.routes)
    return QuotaAdmission(QuotaStore(caller, settings.quota_table), config.plans, refunds=metered)


def _usage(settings: Settings, on_startup: list, on_shutdown: list) -> UsageRecorder:
    from tollway.usage.emitter import SQS_CONFIG, BackgroundFlusher, UsageEmitter
    from tollway.usage.sqs import LeanSqs

    # The boto3 client only lends its endpoint, region and credentials (see tollway.usage.sqs).
    sqs = LeanSqs.from_client(aws.client("sqs", config=SQS_CONFIG))
    emitter = UsageEmitter(sqs, settings.usage_queue_url)
    # Under uvicorn (lifespan on); on Lambda (lifespan off) the extension flushes instead.
    flusher = BackgroundFlusher(emitter)
    on_startup.append(flusher.start)
    on_shutdown.insert(0, flusher.stop)
    return emitter
