"""A gateway with a real emitter, a loopback backend, the usage function fed by the dev poller.

Authentication and quota are test steps injected through the Gateway's constructor (the
usage path only needs a principal and an admission decision): the `x-api-key` header is
`<consumer>:<plan>`, and a consumer is refused with 429 after `limit` admitted requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tollway import aws
from tollway.config.compile import compile_infra
from tollway.core.context import Context
from tollway.core.messages import Request
from tollway.core.principal import Principal
from tollway.errors import TooManyRequests, Unauthorized
from tollway.gateway import Gateway
from tollway.http.app import GatewayApp
from tollway.recording.emitter import BackgroundFlusher, UnsentLog, UsageEmitter
from tollway.settings import Settings
from tollway.table.routes import CompiledConfig, CompiledRoute
from tollway.transport.exchange import AiohttpExchanger
from tollway.upstream.dispatch import HttpUpstream

from tests.lean import SQS_CONFIG, lean_sqs

ROUTES = {
    "team": "billing",
    "routes": [
        {
            "id": "items.get",
            "path": "/v1/items/{id}",
            "methods": ["GET"],
            "auth": ["api_key"],
            "cost": 1,
            "backends": [{"name": "items", "service": "items", "path": "/items/{id}"}],
        },
        {
            "id": "reports.post",
            "path": "/v1/reports",
            "methods": ["POST"],
            "auth": ["api_key"],
            "cost": 5,
            "backends": [{"name": "reports", "service": "items", "path": "/reports"}],
        },
    ],
}
PLANS = {
    "plans": {
        "free": {"quota": {"limit": 1000, "per": "day"}, "price": {"per_1000_units": 0}},
        "pro": {"quota": {"limit": 1000000, "per": "month"}, "price": {"per_1000_units": 0.5}},
        "metered": {"price": {"per_1000_units": 0.3}},
    }
}


def write_infra(folder: Path) -> Path:
    (folder / "routes").mkdir(parents=True)
    gateway = {"stages": {"dev": {"services": {"items": "http://127.0.0.1:9"}}}}
    (folder / "gateway.yaml").write_text(yaml.safe_dump(gateway))
    (folder / "plans.yaml").write_text(yaml.safe_dump(PLANS))
    (folder / "routes" / "billing.yaml").write_text(yaml.safe_dump(ROUTES))
    return folder


async def backend(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


class HeaderAuthenticator:
    async def authenticate(
        self, request: Request, route: CompiledRoute, deadline: float | None = None
    ) -> Principal:
        value = request.headers.get("x-api-key")
        if not value or ":" not in value:
            raise Unauthorized("missing API key")
        consumer, plan = value.split(":", 1)
        return Principal(consumer, plan, frozenset(), "api_key", key_id="k-" + consumer)


@dataclass
class LimitAdmission:
    limit: int = 1_000_000
    spent: dict[str, int] = field(default_factory=dict)

    def spend(self, ctx: Context) -> LimitSpend:
        return LimitSpend(self, ctx)

    def policy(self, principal: Any) -> list[tuple[str, str]]:
        return [("ratelimit-policy", f'"quota";q={self.limit};w=2592000')]


@dataclass
class LimitSpend:
    """Counts requests per consumer in memory, one unit each."""

    admission: LimitAdmission
    ctx: Context

    async def run(self) -> None:
        spent, consumer = self.admission.spent, self.ctx.principal.consumer_id
        if spent.get(consumer, 0) >= self.admission.limit:
            raise TooManyRequests("quota exhausted", retry_after=60, limit="quota")
        spent[consumer] = spent.get(consumer, 0) + 1
        self.ctx.admitted = True
        self.ctx.cost_units = self.ctx.route.cost

    def settle(self) -> None:
        pass

    def remaining(self) -> str | None:
        return None


@dataclass
class Stack:
    config: CompiledConfig
    infra: Path
    env: dict[str, str]
    emitter: UsageEmitter
    admission: Any
    app: GatewayApp
    sqs: Any
    dynamodb: Any

    @property
    def settings(self) -> Settings:
        return Settings(
            infra=self.infra,
            stage="dev",
            usage_table=self.env["TOLLWAY_USAGE_TABLE"],
            usage_queue_url=self.env["TOLLWAY_USAGE_QUEUE_URL"],
            environ={},
        )


def build_stack(
    aws_env: dict[str, str],
    infra: Path,
    backend_url: str,
    *,
    sqs: Any = None,
    unsent: UnsentLog | None = None,
    interval_s: float = 0.05,
    admission: Any = None,
) -> Stack:
    config = compile_infra(infra, "dev", {"TOLLWAY_SERVICE_ITEMS": backend_url})
    sqs = sqs or lean_sqs(aws.client("sqs", config=SQS_CONFIG))  # as assemble wires it
    emitter = UsageEmitter(sqs, aws_env["TOLLWAY_USAGE_QUEUE_URL"], unsent=unsent)
    admission = admission or LimitAdmission()
    exchanger = AiohttpExchanger()
    gateway = Gateway(
        config,
        authenticator=HeaderAuthenticator(),
        upstream=HttpUpstream(exchanger),
        admission=admission,
        usage=emitter,
    )
    flusher = BackgroundFlusher(emitter, interval_s=interval_s)
    app = GatewayApp(gateway, on_startup=[flusher.start], on_shutdown=[flusher.stop, exchanger.close])
    return Stack(config, infra, aws_env, emitter, admission, app, aws.client("sqs"), aws.client("dynamodb"))


@pytest.fixture
def infra(tmp_path: Path) -> Path:
    return write_infra(tmp_path / "infra")


@pytest.fixture
def backend_url(serve: Callable[..., str]) -> str:
    return serve(backend)


@pytest.fixture
def stack(aws: dict[str, str], infra: Path, backend_url: str) -> Stack:
    return build_stack(aws, infra, backend_url)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def queue_depth(sqs: Any, queue_url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    stoppers: list[Callable[[], None]] = []
    yield stoppers
    for stop in reversed(stoppers):
        stop()


class Relay:
    """A TCP relay on loopback to `target`; closed (connection refused) until `open()`."""

    def __init__(self, target_port: int) -> None:
        from tollway.dev.serve import free_port

        self.target_port = target_port
        self.port = free_port()
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        import socketserver
        import threading

        target = self.target_port

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                import selectors
                import socket

                upstream = socket.create_connection(("127.0.0.1", target))
                sel = selectors.DefaultSelector()
                sel.register(self.request, selectors.EVENT_READ, upstream)
                sel.register(upstream, selectors.EVENT_READ, self.request)
                try:
                    while True:
                        for key, _ in sel.select(timeout=5):
                            data = key.fileobj.recv(65536)
                            if not data:
                                return
                            key.data.sendall(data)
                finally:
                    upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Pipe)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
