"""Wire one container's gateway: compile config, create clients once, build the app.

Everything created here lives as long as the container: the HTTP client (backends,
JWKS and DynamoDB quota calls share its pool), one boto3 DynamoDB client (key lookups,
and the endpoint and credentials of the quota calls), the SQS client of the usage
emitter, and the discovery resolvers.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx

from tollway import aws
from tollway.auth.authenticator import build_authenticator
from tollway.config.compile import CompiledConfig
from tollway.http.app import GatewayApp
from tollway.observability import access_log
from tollway.pipeline import Admission, Gateway, UsageRecorder
from tollway.settings import Settings
from tollway.snapstart import Renewal
from tollway.upstream.client import make_client
from tollway.upstream.dispatch import HttpUpstream


def build_app(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    config: CompiledConfig | None = None,
) -> GatewayApp:
    """`config`: the route table built for this stage (config/artifact.py); else the sources, compiled."""
    if config is None:
        from tollway.config.compile import compile_infra

        config = compile_infra(settings.infra, settings.stage, settings.environ)
    client = http_client or make_client()
    dynamodb = cache(lambda: aws.client("dynamodb"))  # created only if a table needs it
    on_startup: list = []
    on_shutdown: list = [client.aclose]

    authenticator = build_authenticator(
        config, settings, client, dynamodb=dynamodb() if settings.keys_table else None
    )
    admission = _admission(settings, config, client, dynamodb) if settings.quota_table else None
    usage = _usage(settings, on_startup, on_shutdown) if settings.usage_queue_url else None
    directory = _directory(config)

    gateway = Gateway(
        config,
        authenticator=authenticator,
        upstream=HttpUpstream(client, directory=directory),
        admission=admission,
        usage=usage,
        access_log=access_log,
    )
    app = GatewayApp(gateway, on_startup=on_startup, on_shutdown=on_shutdown)
    # What a SnapStart restore renews (tollway/snapstart.py); the Lambda adapter registers it.
    app.renewal = Renewal(
        keys=authenticator.keys,
        tokens=authenticator.tokens,
        quota_caller=admission.store.caller if admission is not None else None,
        sqs=getattr(usage, "sqs", None),
        directory=directory,
        session=_new_session,
        client=aws.client,
    )
    return app


def _new_session() -> Any:
    aws.session.cache_clear()  # clients made from now on use the restored container's chain too
    return aws.session()


def _directory(config: CompiledConfig) -> Any:
    # Discovery (and its AWS clients) only for a table that has ssm: or cloudmap: services.
    if not any(b.target and b.target.reference for route in config.routes for b in route.backends):
        return None
    from tollway.discovery.directory import build_directory, references

    return build_directory(references(config), aws.client)


def _admission(settings: Settings, config: Any, client: httpx.AsyncClient, dynamodb: Any) -> Admission:
    from tollway.dynamo import DynamoCaller
    from tollway.quota.admission import QuotaAdmission
    from tollway.quota.store import QuotaStore

    # The boto3 client only lends its endpoint, region and credentials; calls go through
    # the shared HTTP client's pool (see tollway.dynamo).
    caller = DynamoCaller.from_client(client, dynamodb())
    return QuotaAdmission(QuotaStore(caller, settings.quota_table), config.plans)


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
