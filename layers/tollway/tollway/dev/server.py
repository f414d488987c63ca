"""`tollway dev`: the whole gateway on one machine, no AWS account and no Docker.

In one process: the moto server (emulated DynamoDB and SQS) on loopback, the tables and
queues template.yaml declares, the demo backend services, a demo consumer and key, the
usage function fed from the emulated queue as Lambda's SQS event source would feed it,
and the gateway itself under uvicorn.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import uvicorn

from tollway.config.compile import compile_infra
from tollway.dev.backends import DEMO_SERVICES
from tollway.dev.serve import ServedApp, serve_in_thread
from tollway.dev.template import provision, read_template
from tollway.discovery.target import parse_target

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dev",
    "AWS_SECRET_ACCESS_KEY": "dev",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
DEV_JWT_SECRET = "tollway-dev-secret-change-me-0123456789"


@dataclass
class DevOptions:
    infra: Path = Path("infra")
    template: Path = Path("template.yaml")
    host: str = "127.0.0.1"
    port: int = 3000
    aws_port: int = 4566
    stage: str = "dev"
    demo_backends: bool = True
    demo_key: str = "demo-key"
    state_dir: Path = Path(".tollway")


@dataclass
class DevStack:
    """What `start` brought up; `stop` takes it down in reverse order."""

    env: dict[str, str]
    aws_url: str
    gateway_url: str
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        while self.stoppers:
            # Shutting down: one part failing to stop must not keep the others running.
            with contextlib.suppress(Exception):
                self.stoppers.pop()()


def start_emulator(host: str, port: int) -> tuple[str, Callable[[], None]]:
    from moto.server import ThreadedMotoServer

    # The emulator's own request log would drown the gateway's.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return f"http://{host}:{port}", server.stop


def start_demo_backends(services: dict[str, str]) -> list[ServedApp]:
    """A demo service for each loopback instance of users, orders and reviews."""
    served = []
    for name, spec in services.items():
        if name not in DEMO_SERVICES:
            continue
        try:
            urls = parse_target(spec).urls
        except ValueError:
            continue
        for url in urls:
            parts = urlsplit(url)
            if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
                served.append(serve_in_thread(DEMO_SERVICES[name], host=parts.hostname, port=parts.port))
    return served


def write_dev_env(path: Path, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `tollway dev`: the emulator's settings for other tollway commands."]
    lines += [f"{k}={v}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")


def start(options: DevOptions) -> tuple[DevStack, uvicorn.Server]:
    config = compile_infra(options.infra, options.stage, os.environ)
    aws_url, stop_emulator = start_emulator(options.host, options.aws_port)
    stack = DevStack(env={}, aws_url=aws_url, gateway_url=f"http://{options.host}:{options.port}")
    stack.stoppers.append(stop_emulator)

    # Cloud Map's data-plane calls would go to data-<host>: the emulator serves one host.
    env = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": aws_url, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    os.environ["AWS_ENDPOINT_URL"] = aws_url
    os.environ["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    os.environ.setdefault("TOLLWAY_DEV_JWT_SECRET", DEV_JWT_SECRET)
    env["TOLLWAY_DEV_JWT_SECRET"] = os.environ["TOLLWAY_DEV_JWT_SECRET"]

    dynamodb = boto3.client("dynamodb", endpoint_url=aws_url)
    sqs = boto3.client("sqs", endpoint_url=aws_url)
    provisioned = provision(read_template(options.template), dynamodb, sqs, {"Stage": options.stage})
    env.update(provisioned.environment)
    env["TOLLWAY_STAGE"] = options.stage
    os.environ.update(env)
    stack.env = env
    write_dev_env(options.state_dir / "dev.env", env)

    if options.demo_backends:
        for served in start_demo_backends(dict(config.services)):
            stack.stoppers.append(served.stop)

    from tollway.dev.demo import create_demo_consumer, start_usage_pipeline

    create_demo_consumer(env, options.infra, options.demo_key)
    stack.stoppers.append(start_usage_pipeline(env, options.infra, sqs))

    from tollway.assemble import build_app
    from tollway.settings import Settings

    # The router accepts the demo key only where this is set: `tollway dev`, never a stack.
    os.environ["TOLLWAY_DEMO_KEY"] = options.demo_key
    app = build_app(Settings.from_environ(os.environ, options.infra))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level="warning",
            lifespan="on",
            server_header=False,
            proxy_headers=False,
        )
    )
    return stack, server


def run(options: DevOptions) -> int:
    stack, server = start(options)
    ready = threading.Event()

    async def announce() -> None:
        ready.set()
        print(
            f"tollway dev ready on {stack.gateway_url} "
            f"(emulator {stack.aws_url}, settings in {options.state_dir / 'dev.env'})",
            flush=True,
        )
        print(f"  try: curl -H 'x-api-key: {options.demo_key}' {stack.gateway_url}/v1/users/1", flush=True)

    original = server.startup

    async def startup(sockets=None) -> None:
        await original(sockets)
        if server.started:
            await announce()

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        stack.stop()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return 0 if ready.is_set() else 1
