"""`tollway dev`: the whole gateway on one machine, no AWS account and no Docker.

The gateway runs alone in this process, under uvicorn as in `make bench`. Sidecar
processes (tollway.dev.sidecar) run the moto server (emulated DynamoDB and SQS) on
loopback, the demo backend services, and the usage function fed from the emulated queue
as Lambda's SQS event source would feed it. The tables and queues come from
template.yaml, and a demo consumer and key are created.

As a server: it says what it starts while it starts; Ctrl-C and SIGTERM stop it the same
way, in order (the gateway's last usage flush, then the usage function, the demo
backends, the emulators), without a traceback, SIGTERM with exit status 0 (Ctrl-C: 130);
an edit under the infra folder reloads the routes (tollway.dev.reload).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import uvicorn

from tollway.config.compile import compile_infra
from tollway.dev.backends import DEMO_SERVICES
from tollway.dev.grpc_demo import demo_grpc_spec
from tollway.dev.preflight import check_infra, check_ports, check_template, find_template
from tollway.dev.serve import free_port, server_config
from tollway.dev.sidecar import launch
from tollway.dev.template import provision
from tollway.table.targets import parse_target

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dev",
    "AWS_SECRET_ACCESS_KEY": "dev",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
DEV_JWT_SECRET = "tollway-dev-secret-change-me-0123456789"


class Terminated(Exception):
    """SIGTERM: stop as Ctrl-C does, in order."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def say(line: str) -> None:
    """A progress line on standard output, at once (it may be a pipe)."""
    print(f"tollway dev: {line}", flush=True)


@dataclass
class DevOptions:
    infra: Path = Path("infra")
    template: Path | None = None  # None: next to the infra folder, here, then Tollway's own
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
    template: Path
    stoppers: list[Callable[[], None]] = field(default_factory=list)
    demo_key: str | None = None  # the real key issued to the demo consumer at start

    def stop(self) -> None:
        while self.stoppers:
            # Shutting down: one part failing to stop must not keep the others running.
            with contextlib.suppress(Exception):
                self.stoppers.pop()()


def demo_backends(services: dict[str, str]) -> list[tuple[str, str, int]]:
    """(name, host, port) of each loopback instance of users, orders and reviews."""
    out = []
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
                out.append((name, parts.hostname, parts.port))
    return out


def write_dev_env(path: Path, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `tollway dev`: the emulator's settings for other tollway commands."]
    lines += [f"{k}={v}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")


def start(options: DevOptions) -> tuple[DevStack, uvicorn.Server]:
    """Check every file and port, then start the sidecars and build the gateway.

    Raises `DevSetupError` (one line) or `ConfigError` (every problem of the infra folder)
    before anything is started, or after stopping what was.
    """
    check_infra(options.infra)
    template_path = find_template(options.template, options.infra, Path.cwd())
    template = check_template(template_path)
    config = compile_infra(options.infra, options.stage, os.environ)
    say(f"{len(config.routes)} route(s) of stage {options.stage} from {options.infra}")
    backends = demo_backends(dict(config.services)) if options.demo_backends else []
    grpc_demo = demo_grpc_spec(config) if options.demo_backends else None
    check_ports(
        options.host,
        [
            (options.port, "the gateway's port", "choose another with --port N"),
            (
                options.aws_port,
                "the AWS emulator's port; LocalStack also uses 4566",
                "choose another with --aws-port N",
            ),
            *(
                (
                    port,
                    f"the demo {name} service, from stage {options.stage} of gateway.yaml",
                    f"set TOLLWAY_SERVICE_{name.upper()}={scheme}://127.0.0.1:PORT "
                    "or pass --no-demo-backends",
                )
                for scheme, (name, _, port) in [
                    *(("http", b) for b in backends),
                    *(("grpc", b) for b in (grpc_demo["services"] if grpc_demo else [])),
                ]
            ),
        ],
    )
    stack = DevStack(
        env={},
        aws_url="",
        gateway_url=f"http://{options.host}:{options.port}",
        template=template_path,
    )
    try:
        _start_sidecars(options, stack, template, backends, grpc_demo)
        return stack, _gateway(options, stack)
    except BaseException:
        stack.stop()
        raise


def _start_sidecars(
    options: DevOptions, stack: DevStack, template: dict, backends: list, grpc_demo: dict | None = None
) -> None:
    # Started together: each child's imports take a while, the emulators' most. SQS gets an
    # emulator of its own: the usage function's DynamoDB transactions slow moto as the usage
    # table grows, and must not hold up the gateway's usage sends. The AWS emulator passes
    # SQS requests on to it, so that its port alone serves everything (env.local.json).
    sqs_port = free_port(options.host)
    say(f"starting the AWS emulator on {options.host}:{options.aws_port} and the SQS emulator")
    emulator = launch(
        "emulator",
        {
            "host": options.host,
            "port": options.aws_port,
            "name": "AWS emulator",
            "nice": 5,
            "sqs_url": f"http://{options.host}:{sqs_port}",
        },
        name="AWS emulator",
    )
    stack.stoppers.append(emulator.stop)
    queues = launch(
        "emulator",
        {"host": options.host, "port": sqs_port, "serialize": False, "name": "SQS emulator"},
        name="SQS emulator",
    )
    stack.stoppers.append(queues.stop)
    if backends:
        say("starting the demo backends: " + ", ".join(f"{name} :{port}" for name, _, port in backends))
    served = (
        launch("backends", {"services": backends, "name": "demo backends"}, name="demo backends")
        if backends
        else None
    )
    if served is not None:
        stack.stoppers.append(served.stop)
    catalog = launch("grpc", grpc_demo, name="demo gRPC service") if grpc_demo else None
    if catalog is not None:
        stack.stoppers.append(catalog.stop)
    aws_url = emulator.wait_ready()["url"]
    sqs_url = queues.wait_ready()["url"]
    stack.aws_url = aws_url

    # Cloud Map's data-plane calls would go to data-<host>: the emulator serves one host.
    env = {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ENDPOINT_URL_SQS": sqs_url,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
    }
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    os.environ.update(
        {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_DISABLE_HOST_PREFIX_INJECTION")}
    )
    os.environ.setdefault("TOLLWAY_DEV_JWT_SECRET", DEV_JWT_SECRET)
    env["TOLLWAY_DEV_JWT_SECRET"] = os.environ["TOLLWAY_DEV_JWT_SECRET"]

    dynamodb = boto3.client("dynamodb", endpoint_url=aws_url)
    sqs = boto3.client("sqs", endpoint_url=sqs_url)
    say(f"emulators up; creating the tables, queues and secrets of {stack.template}")
    provisioned = provision(template, dynamodb, sqs, {"Stage": options.stage})
    env.update(provisioned.environment)
    env["TOLLWAY_STAGE"] = options.stage
    os.environ.update(env)
    stack.env = env
    write_dev_env(options.state_dir / "dev.env", env)

    say("starting the usage function (fed from the usage queue) and the demo consumer")
    usage = launch(
        "usage", {"env": env, "infra": str(options.infra), "name": "usage function"}, name="usage function"
    )
    stack.stoppers.append(usage.stop)
    from tollway.dev.demo import issue_demo_key

    stack.demo_key = issue_demo_key(env)
    if served is not None:
        served.wait_ready()
    if catalog is not None:
        catalog.wait_ready()
    usage.wait_ready()


def _gateway(options: DevOptions, stack: DevStack) -> uvicorn.Server:
    from tollway.assemble import build_app
    from tollway.dev.reload import ReloadingApp
    from tollway.settings import Settings

    say(f"starting the gateway on {stack.gateway_url}")
    settings = Settings.from_environ(os.environ, options.infra)
    app = ReloadingApp(
        build_app(settings),
        lambda config: build_app(settings, config=config),
        options.infra,
        options.stage,
        dict(os.environ),
        say=say,
    )
    if stack.demo_key is not None:
        # The gateway is the production one and knows no demo key: the front swaps the demo
        # key's name for the real key issued at start (tollway/dev/front.py).
        from tollway.dev.front import DemoKeyFront

        app = DemoKeyFront(app, options.demo_key, stack.demo_key)
    # uvloop and httptools, as the bare worker of `make bench`, with an edge's limits on what
    # a caller may send and hold (tollway/dev/serve.py; README, "Serving the gateway").
    return uvicorn.Server(server_config(app, options.host, options.port, lifespan="on"))


def _descriptors_for_connections() -> None:
    """Room for the connection cap and the backend pool (512 each) and the emulators: a
    soft descriptor limit of 1,024, common by default, is raised as far as 4,096."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(options: DevOptions) -> int:
    """Serve until Ctrl-C (KeyboardInterrupt, after the ordered stop) or SIGTERM (0)."""
    _descriptors_for_connections()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        stack, server = start(options)  # stops what it started if a signal comes meanwhile
    except Terminated:
        signal.signal(signal.SIGTERM, previous)
        return 0
    ready = threading.Event()

    async def announce() -> None:
        ready.set()
        print(f"tollway dev: tables and queues from {stack.template}", flush=True)
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
    # uvicorn handles SIGINT and SIGTERM while it serves (a graceful stop, with the gateway's
    # last usage flush), then raises the signal again: SIGTERM lands here as Terminated, and
    # SIGINT as KeyboardInterrupt, or not at all when the event loop's own SIGINT handler runs
    # it after the loop has finished (seen once in a few hundred stops). What uvicorn received
    # is recorded here, so a Ctrl-C is a Ctrl-C whichever way its re-raise goes.
    received: list[int] = []
    handle_exit = server.handle_exit

    def record_exit(sig: int, frame: Any) -> None:
        received.append(sig)
        handle_exit(sig, frame)

    server.handle_exit = record_exit  # type: ignore[method-assign]
    why = "Ctrl-C"
    try:
        server.run()
        why = "Ctrl-C" if signal.SIGINT in received else "stopped"
    except Terminated:
        why = "SIGTERM"
    finally:
        # The ordered stop must finish: neither a late re-raise nor a second signal cuts it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say(f"stopping ({why}): the usage function, the demo backends, the emulators")
        stack.stop()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, previous)
        say("stopped")
    if why == "Ctrl-C":
        raise KeyboardInterrupt
    return 0 if ready.is_set() or why == "SIGTERM" else 1
