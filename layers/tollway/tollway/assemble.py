"""Wire one container's gateway: compile config, create clients once, build the app."""

from __future__ import annotations

from tollway.config.compile import CompiledConfig, compile_infra
from tollway.http.app import GatewayApp
from tollway.observability import access_log
from tollway.pipeline import Gateway
from tollway.settings import Settings
from tollway.upstream.client import make_client
from tollway.upstream.dispatch import HttpUpstream


def build_app(settings: Settings, *, http_client=None) -> GatewayApp:
    config: CompiledConfig = compile_infra(settings.infra, settings.stage, settings.environ)
    client = http_client or make_client()
    # >>> auth wiring
    from tollway.auth.authenticator import build_authenticator

    authenticator = build_authenticator(config, settings, client)
    # <<< auth wiring
    # >>> quota wiring
    admission = None
    if settings.quota_table is not None:
        from tollway import aws
        from tollway.quota.admission import QuotaAdmission
        from tollway.quota.store import QuotaStore

        admission = QuotaAdmission(QuotaStore(aws.client("dynamodb"), settings.quota_table), config.plans)
    # <<< quota wiring
    # >>> usage wiring
    usage = None
    on_startup: list = []
    on_shutdown: list = [client.aclose]
    if settings.usage_queue_url:
        from tollway.aws import client as aws_client
        from tollway.usage.emitter import SQS_CONFIG, BackgroundFlusher, UsageEmitter

        usage = UsageEmitter(aws_client("sqs", config=SQS_CONFIG), settings.usage_queue_url)
        # Under uvicorn (lifespan on); on Lambda (lifespan off) the extension flushes instead.
        flusher = BackgroundFlusher(usage)
        on_startup.append(flusher.start)
        on_shutdown.insert(0, flusher.stop)
    # <<< usage wiring
    # >>> discovery wiring
    directory = None
    from tollway.discovery.directory import references

    if refs := references(config):
        from tollway import aws
        from tollway.discovery.directory import build_directory

        directory = build_directory(refs, aws.client)
    # <<< discovery wiring
    gateway = Gateway(
        config,
        authenticator=authenticator,
        upstream=HttpUpstream(client, directory=directory),
        admission=admission,
        usage=usage,
        access_log=access_log,
    )
    return GatewayApp(gateway, on_startup=on_startup, on_shutdown=on_shutdown)
