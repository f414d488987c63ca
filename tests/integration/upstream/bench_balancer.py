"""CPU cost of choosing an instance: the selection alone, and end to end with 1 vs 3 instances.

uv run python -m tests.integration.upstream.bench_balancer
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
import timeit
from pathlib import Path

import httpx
import uvicorn
from tollway.config.models import Breaker
from tollway.upstream.balancer import RoundRobin
from tollway.upstream.breaker import Breakers

from tests.integration.upstream.bench import _Discard
from tests.integration.upstream.conftest import Reply, Scripted, gateway, write_infra


def selection_us(count: int, loops: int = 200_000) -> float:
    """What `BackendCaller.send` does per try: a rotation pick that asks one breaker."""
    urls = tuple(f"http://10.0.0.{i}:80" for i in range(count))
    breakers, config, rotation = Breakers(), Breaker(), RoundRobin()

    def allow(url: str) -> bool:
        return breakers.get(url, config).allow()

    def once() -> None:
        rotation.pick(urls, allow, ())

    return min(timeit.repeat(once, number=loops, repeat=5)) / loops * 1e6


def run_backend_on(sockets: list[socket.socket]) -> None:
    """One backend process behind every port: 1 vs 3 instances differ only in the gateway."""
    backend = Scripted({"/fast/a": Reply(json={"id": "a", "name": "x" * 100})})
    backend.seen = _Discard()
    config = uvicorn.Config(backend, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=sockets)


def start_backend(count: int) -> tuple[list[str], multiprocessing.Process]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    proc = multiprocessing.Process(target=run_backend_on, args=(sockets,), daemon=True)
    proc.start()
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for url in urls:
        for _ in range(200):
            try:
                httpx.get(f"{url}/fast/a")
                break
            except httpx.TransportError:
                time.sleep(0.05)
    return urls, proc


async def cpu_per_request(root: Path, services: str | list[str], requests: int, runs: int) -> list[float]:
    route = {"id": "p", "path": "/p", "backends": [{"name": "a", "service": "svc", "path": "/fast/a"}]}
    infra = write_infra(root, {"svc": services}, [route], timeout_ms=5000)
    samples = []
    async with gateway(infra) as (gw, _):
        for _ in range(300):
            await gw.get("/p")
        for _ in range(runs):
            cpu = time.process_time()
            for _ in range(requests):
                assert (await gw.get("/p")).status_code == 200
            samples.append((time.process_time() - cpu) / requests * 1e6)
    return samples


async def main(requests: int = 1000, runs: int = 5) -> None:
    for count in (1, 3, 10):
        print(f"selection among {count:2} instance(s): {selection_us(count):.3f} us per pick")
    urls, proc = start_backend(3)
    try:
        one, three = [], []
        # Alternate the two set-ups so that the machine's noise hits both alike.
        for _ in range(3):
            with tempfile.TemporaryDirectory() as tmp:
                one += await cpu_per_request(Path(tmp), urls[0], requests, runs)
            with tempfile.TemporaryDirectory() as tmp:
                three += await cpu_per_request(Path(tmp), urls, requests, runs)
        m1, m3 = statistics.median(one), statistics.median(three)
        runs_of = f"median of {len(one)} runs x {requests}"
        print(f"proxy GET, 1 instance:  {m1:.0f} us gateway CPU/request ({runs_of})")
        print(f"proxy GET, 3 instances: {m3:.0f} us gateway CPU/request ({runs_of})")
        print(f"difference: {m3 - m1:+.0f} us (noise: 1 instance min..max {min(one):.0f}..{max(one):.0f})")
    finally:
        proc.terminate()
        proc.join()


if __name__ == "__main__":
    asyncio.run(main())
