"""Wire one container's gateway: compile config, create clients once, build the app.

Everything created here lives as long as the container: the one HTTP exchanger (its pool
shared by backends, JWKS, and the DynamoDB calls of key lookups and quotas:
tollway/transport), the API key MAC (its secret read once), the SQS sender of the usage
emitter, and the discovery resolvers. Nothing here blocks a request on boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollway import aws
from tollway.auth.authenticator import build_authenticator
from tollway.aws.clock import AwsClock
from tollway.core.steps import UsageRecorder
from tollway.gateway import Gateway
from tollway.http.app import GatewayApp
from tollway.observability import access_log
from tollway.settings import Settings
from tollway.snapstart import Renewal
from tollway.table.routes import CompiledConfig
from tollway.transport.exchange import AiohttpExchanger, Exchanger
from tollway.upstream.dispatch import HttpUpstream

if TYPE_CHECKING:
    from tollway.quota.admission import QuotaAdmission


def build_app(
    settings: Settings,
    *,
    exchanger: Exchanger | None = None,
    config: CompiledConfig | None = None,
    runtime_trace: Callable[[], str | None] | None = None,
) -> GatewayApp:
    """`exchanger`: the container's HTTP stack (default: a new `AiohttpExchanger`; tests pass one
    that counts what it sends). `config`: the route table built for this stage
    (config/artifact.py); else the sources, compiled. `runtime_trace`: the current
    invocation's X-Ray trace header, on Lambda (tollway.core.trace)."""
    if config is None:
        from tollway.config.compile import compile_infra

        config = compile_infra(settings.infra, settings.stage, settings.environ)
    exchanger = exchanger or AiohttpExchanger()
    on_startup: list = []
    on_shutdown: list = [exchanger.close]
    clock = AwsClock()  # every AWS call of the container signs with it, corrected if AWS says so
    dynamodb = _dynamodb(settings, exchanger, clock) if settings.keys_table or settings.quota_table else None

    authenticator = build_authenticator(
        config, settings, exchanger, keys=_keys(settings, dynamodb), mac=_mac(settings, clock)
    )
    admission = _admission(settings, config, dynamodb) if settings.quota_table else None
    if admission is not None:
        # Metered routes settle after the response: in tasks under uvicorn (this hook runs
        # only with lifespan on); on Lambda the internal extension flushes them (tollway.functions.router).
        on_startup.append(admission.settlements.start)
        on_shutdown.insert(0, admission.settlements.stop)
    usage = _usage(settings, clock, on_startup, on_shutdown) if settings.usage_queue_url else None
    directory = _directory(config)

    upstream = HttpUpstream(exchanger, directory=directory)
    upstream.enable_grpc(config)  # gRPC backends only: their messages built now, not per request
    on_shutdown.append(upstream.close_grpc)
    gateway = Gateway(
        config,
        authenticator=authenticator,
        upstream=upstream,
        admission=admission,
        usage=usage,
        access_log=access_log,
    )
    app = GatewayApp(gateway, on_startup=on_startup, on_shutdown=on_shutdown, runtime_trace=runtime_trace)
    # What a SnapStart restore renews (tollway/snapstart.py); the Lambda adapter registers it.
    app.renewal = Renewal(
        keys=authenticator.keys,
        tokens=authenticator.tokens,
        quota_caller=admission.store.caller if admission is not None else None,
        sqs=getattr(usage, "sqs", None),
        usage=usage,
        directory=directory,
        session=_new_session,
        clock=clock,
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


def _dynamodb(settings: Settings, exchanger: Exchanger, clock: AwsClock) -> Any:
    from tollway.aws.dynamodb import DynamoCaller

    environ = settings.environ or {}
    region = aws.region(environ)
    endpoint = aws.endpoint("dynamodb", environ, region)
    return DynamoCaller(exchanger, endpoint, region, aws.credentials(environ), clock=clock)


def _keys(settings: Settings, dynamodb: Any) -> Any:
    if not settings.keys_table:
        return None
    from tollway.auth.store import KeyLookup

    return KeyLookup(dynamodb, settings.keys_table)


def _mac(settings: Settings, clock: AwsClock) -> Any:
    if not settings.key_secret_id:
        return None
    from tollway.auth.secret import load_key_mac

    return load_key_mac(settings.key_secret_id, settings.environ or {}, clock=clock)


def _admission(settings: Settings, config: Any, dynamodb: Any) -> QuotaAdmission:
    from tollway.quota.admission import QuotaAdmission
    from tollway.quota.store import QuotaStore

    assert settings.quota_table is not None
    metered = any(route.metering is not None for route in config.routes)
    return QuotaAdmission(QuotaStore(dynamodb, settings.quota_table), config.plans, refunds=metered)


def _usage(settings: Settings, clock: AwsClock, on_startup: list, on_shutdown: list) -> UsageRecorder:
    from tollway.aws.sqs import LeanSqs
    from tollway.recording.emitter import BackgroundFlusher, UsageEmitter

    sqs = LeanSqs.from_environment(settings.environ or {}, clock=clock)
    emitter = UsageEmitter(sqs, settings.usage_queue_url)
    # Under uvicorn (lifespan on); on Lambda (lifespan off) the extension flushes instead.
    flusher = BackgroundFlusher(emitter)
    on_startup.append(flusher.start)
    on_shutdown.insert(0, flusher.stop)
    return emitter
