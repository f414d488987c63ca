"""Rows G1-G3 of `make bench`: gRPC backends (SPEC §7), each ratio against a baseline of the same run.

    G1  CPU per translated unary call (JSON -> message -> call -> canonical JSON, the gateway's
        `GrpcUpstream.proxy`) against the same call made directly with a grpc.aio stub
    G1b the whole warm Lambda invocation of a public gRPC route against that stub call
    G1c ... against the same invocation of a public HTTP proxy route (info)
    G2  cold start of a table with gRPC routes (its first invocation a gRPC call) against
        the same run's cold start without (row 5)

The service is a grpcio server in a process of its own (its CPU is not counted);
`python -m tests.bench.grpc_bench serve PORT` runs it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.procs import Procs

ROUTES = """\
team: grpcbench
routes:
  - id: grpc.get
    path: /v1/grpc/{id}
    methods: [GET]
    public: true
    cost: 0
    backends:
      - {name: t, service: things, grpc: tollway.test.v1.Things/Get, body: {id: "{id}", version: "7"}}
"""
PATH = "/v1/grpc/t-1"


def grpc_service(procs: Procs) -> str:
    """The bench's gRPC service (tests/grpc_backends.py's Things) in its own process."""
    from tests.bench.servers import free_port

    port = free_port()
    procs.start("grpc-service", [sys.executable, "-m", "tests.bench.grpc_bench", "serve", str(port)])
    url = f"grpc://127.0.0.1:{port}"
    _wait(url)
    return url


def _wait(url: str, timeout_s: float = 30) -> None:
    import grpc

    channel = grpc.insecure_channel(url.removeprefix("grpc://"))
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    finally:
        channel.close()


def write_infra(base: Path, url: str) -> Path:
    """The bench's infra folder plus the gRPC route, its service and the test protos."""
    from tests.grpc_backends import copy_protos

    infra = base.parent / "infra-grpc"
    shutil.copytree(base, infra, dirs_exist_ok=True)
    gateway = (infra / "gateway.yaml").read_text()
    service = f'    services:\n      things: "{url}"\n'
    (infra / "gateway.yaml").write_text(gateway.replace("    services:\n", service, 1))
    (infra / "routes" / "grpcbench.yaml").write_text(ROUTES)
    return copy_protos(infra)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh worker process: CPU per call of each variant, in alternating blocks."""
    import grpc
    from google.protobuf import json_format
    from tollway.core.context import Context
    from tollway.core.messages import Request

    from tests.bench.invoke import CONTEXT, http_event, load_router
    from tests.grpc_backends import message_class

    router = load_router(spec["env"])
    route = next(r for r in router.app.gateway.config.routes if r.id == "grpc.get")
    upstream = router.app.gateway.upstream.grpc()
    loop = asyncio.new_event_loop()  # as Mangum: one loop, each call run to completion on it

    get_request, reply_class = message_class("GetRequest"), message_class("Thing")

    async def open_channel() -> Any:
        return grpc.aio.insecure_channel(spec["grpc_url"].removeprefix("grpc://"))

    channel = loop.run_until_complete(open_channel())
    stub = channel.unary_unary(
        "/tollway.test.v1.Things/Get",
        request_serializer=get_request.SerializeToString,
        response_deserializer=reply_class.FromString,
    )

    def direct() -> int:
        reply = loop.run_until_complete(stub(get_request(id="t-1", version=7), timeout=5))
        return 200 if reply.id == "t-1" else 500

    def translated() -> int:
        request = Request("GET", PATH, b"", {"host": "bench"}, b"", "203.0.113.7", "https", "bench-1")
        exchange = Context(request, route, {"id": "t-1"}, time.monotonic())
        return loop.run_until_complete(upstream.proxy(exchange)).status

    def invoked(path: str) -> Any:
        event = http_event(path)
        return lambda: int(router.handler(event, CONTEXT)["statusCode"])

    variants = {
        "stub": direct,
        "translated": translated,
        "handler_grpc": invoked(PATH),
        "handler_http": invoked("/v1/ping"),
    }
    # The answers agree: the stub's reply, as canonical JSON, is what the gateway answers.
    as_json = json_format.MessageToDict(loop.run_until_complete(stub(get_request(id="t-1", version=7))))
    answered = router.handler(http_event(PATH), CONTEXT)["body"]
    rounds, n = spec["rounds"], spec["n"]
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    statuses: dict[str, dict[int, int]] = {k: {} for k in variants}
    for fn in variants.values():
        for _ in range(50):
            fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            gc.collect()
            c0 = time.process_time()
            for _ in range(n):
                status = fn()
                statuses[name][status] = statuses[name].get(status, 0) + 1
            cpu[name].append((time.process_time() - c0) / n * 1e6)
    return {
        "cpu_us": {k: statistics.median(v) for k, v in cpu.items()},
        "cpu_us_rounds": cpu,
        "statuses": statuses,
        "stub_answer": as_json,
        "gateway_answer": answered,
    }


def rows(r: dict[str, Any]) -> list[Any]:
    from tests.bench.table import Row, _failed, _met, _us, _x

    out = []
    g = r.get("grpc")
    why = _failed(g)
    if why:
        out.append(Row("G1", "CPU per translated gRPC unary call", "error", why, "", "≤ 1.50x", "error"))
    else:
        us = g["cpu_us"]
        # Every call answered 200, and the gateway's answer is the stub's reply as canonical JSON.
        ok = all({int(k) for k in s} == {200} for s in g["statuses"].values())
        ok = ok and json.loads(g["gateway_answer"]) == g["stub_answer"]
        stub = f"grpc.aio stub {_us(us['stub'])}"
        ratio = us["translated"] / us["stub"]
        out.append(
            Row(
                "G1",
                "CPU/call, gRPC unary translated (JSON -> message -> call -> canonical JSON)",
                _us(us["translated"]),
                stub,
                _x(ratio),
                "≤ 1.50x",
                _met(ratio <= 1.5) if ok else "error",
            )
        )
        out.append(
            Row(
                "G1b",
                "… the whole warm Lambda invocation of a public gRPC route",
                _us(us["handler_grpc"]),
                stub,
                _x(us["handler_grpc"] / us["stub"]),
                "—",
                "info",
            )
        )
        out.append(
            Row(
                "G1c",
                "… that invocation against a public HTTP proxy route's",
                _us(us["handler_grpc"]),
                f"HTTP route {_us(us['handler_http'])}",
                _x(us["handler_grpc"] / us["handler_http"]),
                "—",
                "info",
            )
        )
    cold, base = r.get("cold_start_grpc"), r.get("cold_start")
    why = _failed(cold) or _failed(base)
    if why:
        out.append(Row("G2", "cold start with gRPC routes", "error", why, "", "—", "error"))
    else:
        with_ms, without_ms = cold["ms"]["gateway"], base["ms"]["gateway"]
        loaded = base["loaded"]["not_for_requests"]
        clean = not {"grpc", "google.protobuf"} & set(loaded)
        out.append(
            Row(
                "G2",
                "cold start, table with a gRPC route, first invocation a gRPC call (median of 7)",
                f"{with_ms:.0f} ms",
                f"row 5, no gRPC route {without_ms:.0f} ms" + ("" if clean else " (loaded grpc!)"),
                _x(with_ms / without_ms),
                "—; without: no grpc import",
                "info" if clean else "NOT MET",
            )
        )
    return out


def serve(port: int) -> None:
    from tests.grpc_backends import ThingsServer

    server = ThingsServer().start(port)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
