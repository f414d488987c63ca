"""Fan-out ratio and per-request CPU cost of composition, on a warm app with loopback backends.

uv run python -m tests.integration.upstream.bench
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from tollway.dev.serve import free_port

from tests.integration.upstream.conftest import Reply, Scripted, gateway, write_infra


def routes() -> list[dict]:
    def backends(names, path):
        return [{"name": n, "service": "svc", "path": f"{path}/{n}"} for n in names]

    return [
        {"id": "five", "path": "/five", "compose": "group", "backends": backends("abcde", "/slow")},
        {"id": "one", "path": "/one", "compose": "group", "backends": backends("a", "/slow")},
        {"id": "group3", "path": "/group3", "compose": "group", "backends": backends("abc", "/fast")},
        {"id": "proxy", "path": "/proxy", "backends": backends("a", "/fast")},
    ]


def run_backend(port: int) -> None:
    """In its own process, so that the gateway's CPU time is measured alone."""
    replies = {f"/slow/{n}": Reply(json={"n": n}, delay_s=0.3) for n in "abcde"}
    replies |= {f"/fast/{n}": Reply(json={"id": n, "name": "x" * 100}) for n in "abc"}
    backend = Scripted(replies)
    backend.seen = _Discard()
    uvicorn.run(backend, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


async def main(root: Path, runs: int = 7, requests: int = 2000) -> None:
    port = free_port()
    server = multiprocessing.Process(target=run_backend, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/fast/a")
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        infra = write_infra(root, {"svc": url}, routes(), timeout_ms=5000)
        async with gateway(infra) as (gw, _):
            walls = {}
            for path in ("/one", "/five"):
                samples = []
                for _ in range(runs):
                    started = time.perf_counter()
                    assert (await gw.get(path)).status_code == 200
                    samples.append(time.perf_counter() - started)
                walls[path] = statistics.median(samples)
            print(f"1 backend of 300 ms:  {walls['/one'] * 1000:.0f} ms (median of {runs})")
            print(f"5 backends of 300 ms: {walls['/five'] * 1000:.0f} ms (median of {runs})")
            print(f"fan-out ratio: {walls['/five'] / walls['/one']:.3f}")
            for path in ("/proxy", "/group3"):
                for _ in range(200):
                    await gw.get(path)
                cpu = time.process_time()
                wall = time.perf_counter()
                for _ in range(requests):
                    await gw.get(path)
                cpu = time.process_time() - cpu
                wall = time.perf_counter() - wall
                print(
                    f"{path}: {cpu / requests * 1e6:.0f} us gateway CPU/request, "
                    f"{wall / requests * 1e6:.0f} us wall ({requests} sequential requests)"
                )
    finally:
        server.terminate()
        server.join()


class _Discard(list):
    def append(self, item) -> None:  # the bench must not grow memory per request
        pass


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
