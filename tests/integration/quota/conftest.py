"""Two independent DynamoDB implementations on loopback: the moto server and dynalite.

Each test "container" talks to them the way the gateway does: a `tollway.aws.dynamodb` caller on
the gateway's exchanger, which counts the requests (`container` fixture).

dynalite (npm, pinned in tools/dynalite) is started once per session as
`node tools/dynalite/node_modules/dynalite/cli.js --port N` and stopped by its pid; the
QuotaTable is created there with the key schema of template.yaml.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from tollway import pipeline
from tollway.aws.dynamodb import DynamoCaller
from tollway.config.compile import compile_infra
from tollway.core.context import Context
from tollway.core.messages import Request, Response
from tollway.core.principal import Principal
from tollway.dev.serve import free_port
from tollway.dev.template import read_template
from tollway.quota.admission import QuotaAdmission
from tollway.table.routes import CompiledRoute

from tests.conftest import INFRA, ROOT, TEMPLATE
from tests.exchangers import Counting
from tests.lean import dynamo_caller

T = TypeVar("T")

DYNALITE = ROOT / "tools" / "dynalite" / "node_modules" / "dynalite" / "cli.js"
# For the tests' own look at the tables: few retries, short timeouts.
CLIENT_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=2)


@dataclass(frozen=True)
class Dynamo:
    name: str  # "moto" | "dynalite"
    url: str
    table: str

    def client(self, config: Config = CLIENT_CONFIG) -> Any:
        """A boto3 client, to inspect the table (the gateway's calls go through `Container`)."""
        return boto3.client("dynamodb", endpoint_url=self.url, region_name="us-east-1", config=config)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dynalite exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("dynalite did not start listening")


@pytest.fixture(scope="session")
def dynalite_url() -> Iterator[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: dynalite (the second DynamoDB implementation) needs Node.js")
    if not DYNALITE.exists():
        pytest.skip("dynalite is not installed: run `npm ci --prefix tools/dynalite --no-audit --no-fund`")
    port = free_port()
    process = subprocess.Popen(
        [node, str(DYNALITE), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}"
        quota = read_template(TEMPLATE)["Resources"]["QuotaTable"]["Properties"]
        client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
        client.create_table(
            TableName="QuotaTable",
            AttributeDefinitions=quota["AttributeDefinitions"],
            KeySchema=quota["KeySchema"],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName="QuotaTable", WaiterConfig={"Delay": 0.1})
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class Serialized:
    """One request at a time through moto, as DynamoDB applies one write at a time per item.

    moto's server handles requests on threads without a lock around UpdateItem: two
    concurrent conditional updates of one item can both read the old value, and one
    increment is lost (measured: 3 lost of 320 in 4 runs out of 30). That is a fault of
    the emulator, not of the condition; serializing requests restores DynamoDB's per-item
    atomicity while the clients still race.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


@pytest.fixture(scope="session")
def atomic_moto_url(moto_url: str) -> Iterator[str]:
    """A second front door to the same in-process moto state, serialized."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = Serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", free_port(), app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(params=["moto", "dynalite"])
def dynamo(request: pytest.FixtureRequest) -> Dynamo:
    if request.param == "moto":
        env = request.getfixturevalue("aws")
        return Dynamo("moto", request.getfixturevalue("atomic_moto_url"), env["TOLLWAY_QUOTA_TABLE"])
    return Dynamo("dynalite", request.getfixturevalue("dynalite_url"), "QuotaTable")


@pytest.fixture
def moto_dynamo(aws: dict[str, str], moto_url: str) -> Dynamo:
    return Dynamo("moto", moto_url, aws["TOLLWAY_QUOTA_TABLE"])


@pytest.fixture(scope="session")
def protected_route() -> CompiledRoute:
    route = next(r for r in compile_infra(INFRA, "dev").routes if r.id == "profile.get")
    return replace(route, cost=1, quota_failure="closed")


@pytest.fixture
def consumer() -> str:
    """A consumer id of its own, so that tests sharing dynalite's table do not meet."""
    return f"c-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def exchange(protected_route: CompiledRoute) -> Callable[..., Context]:
    def make(consumer: str, plan: str, *, cost: int = 1, quota_failure: str = "closed") -> Context:
        request = Request("GET", "/v1/users/1", b"", {}, b"", "127.0.0.1", "http", uuid.uuid4().hex)
        route = replace(protected_route, cost=cost, quota_failure=quota_failure)
        principal = Principal(consumer, plan, frozenset({"users:read"}), "api_key", "k1")
        return Context(request, route, {"user_id": "1"}, time.monotonic(), principal=principal)

    return make


async def admit(quota: QuotaAdmission, ctx: Context) -> dict[str, str]:
    """Admit `ctx` as a route's chain does (tollway.pipeline: the plan step, then the admit
    step, around an answer that calls no backend): the RateLimit fields of that answer. A
    refusal is raised with the fields the chain puts on it."""

    async def answer(ctx: Context) -> Response:
        return Response(200)

    handler = pipeline.state_plan(quota)(pipeline.admit(quota)(answer))
    return dict((await handler(ctx)).headers)


class Clock:
    """An injected wall clock the tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Container:
    """What one warm container holds: its exchanger (counting the DynamoDB operations it
    sends) and the DynamoDB caller on it."""

    exchanger: Counting
    caller: DynamoCaller


def new_container(dynamo: Dynamo | str) -> Container:
    """The gateway's own exchanger (counted) and a caller configured the way build_app
    configures it: from a boto3 client's endpoint, region and credentials."""
    exchanger = Counting()
    url = dynamo if isinstance(dynamo, str) else dynamo.url
    boto = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
    return Container(exchanger, dynamo_caller(exchanger, boto, pause=lambda: 0.0))


@pytest.fixture
async def container() -> AsyncIterator[Callable[[Dynamo | str], Container]]:
    """Make containers for one test (each closed at its end): `box = container(dynamo)`."""
    made: list[Container] = []

    def make(dynamo: Dynamo | str) -> Container:
        made.append(new_container(dynamo))
        return made[-1]

    yield make
    for box in made:
        await box.exchanger.close()


def in_containers(serve: Callable[[], Awaitable[T]], count: int) -> list[T]:
    """Run `serve` in `count` threads, each a container with its own event loop; their
    results, once all have ended (an error in any is raised here)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def container() -> None:
        try:
            results.append(asyncio.run(serve()))
        except BaseException as error:  # surfaced in the calling thread below
            errors.append(error)

    threads = [threading.Thread(target=container) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results
