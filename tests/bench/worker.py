"""In-process measures, each in a fresh Python process so no measure warms another.

    python -m tests.bench.worker MEASURE SPEC.json OUT.json

SPEC carries the run's environment (tables, infra folder), the backend's URL and the keys.
Output of the gateway's own logger goes to this process's stdout (a log file of the bench).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _status(result: dict[str, Any]) -> int:
    return int(result["statusCode"])


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _components(router: Any, spec: dict[str, Any]) -> dict[str, bool]:
    gateway = router.app.gateway
    return {
        "api_key": bool(spec["keys"]),
        "quota": getattr(gateway, "admission", None) is not None,
        "usage": getattr(gateway, "usage", None) is not None,
    }


def measure_cpu(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU (process time) per invocation: the naive floor and Tollway, in alternating blocks."""
    import httpx
    from mangum import Mangum
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

    from tests.bench.invoke import CONTEXT, AwsCalls, floor_handler, http_event, load_router

    calls = AwsCalls()
    calls.attach()
    router = load_router(spec["env"])
    variants: dict[str, tuple[Any, dict[str, Any]]] = {
        "floor": (floor_handler(spec["backend"]), http_event("/v1/ping")),
        "tollway_public": (router.handler, http_event("/v1/ping")),
    }
    if spec.get("transports"):
        from tollway.assemble import build_app
        from tollway.settings import Settings

        settings = Settings.from_environ(spec["env"], Path(spec["env"]["TOLLWAY_INFRA_DIR"]))
        from tests.exchangers import HttpxExchanger

        app = build_app(settings, exchanger=HttpxExchanger(httpx.AsyncHTTPTransport()))
        mime = [*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"]
        variants["tollway_public_default_httpx"] = (
            Mangum(app, lifespan="off", text_mime_types=mime),
            http_event("/v1/ping"),
        )
    key = spec["keys"].get("bench")
    usage = router.app.gateway.usage
    if key:
        full = http_event("/v1/keyed", {"x-api-key": key})
        variants["tollway_full"] = (router.handler, full)
        if usage is not None:
            # The full cost on Lambda: the extension flushes usage after every invocation.
            def flushed(event: dict[str, Any], context: Any) -> dict[str, Any]:
                result = router.handler(event, context)
                usage.flush()
                return result

            variants["tollway_full_with_usage_flush"] = (flushed, full)
    rounds, n = spec["rounds"], spec["n"]
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    statuses: dict[str, dict[int, int]] = {name: {} for name in variants}
    blocking: dict[str, dict[str, int]] = {name: {} for name in variants}
    me = threading.get_ident()
    for handler, event in variants.values():
        for _ in range(30):
            handler(event, CONTEXT)
    for _ in range(rounds):
        for name, (handler, event) in variants.items():
            gc.collect()
            mark = calls.mark()
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                status = _status(handler(event, CONTEXT))
                statuses[name][status] = statuses[name].get(status, 0) + 1
            c1, w1 = time.process_time(), time.perf_counter()
            if usage is not None:
                usage.flush()  # untimed unless the variant flushes itself: the buffer stays small
            cpu[name].append((c1 - c0) / n * 1e6)
            wall[name].append((w1 - w0) / n * 1e6)
            for op, count in calls.since(mark, me).items():
                blocking[name][op] = blocking[name].get(op, 0) + count
    total = rounds * n
    return {
        "cpu_us": {k: statistics.median(v) for k, v in cpu.items()},
        "cpu_us_rounds": cpu,
        "wall_us": {k: statistics.median(v) for k, v in wall.items()},
        "statuses": statuses,
        "blocking_calls_per_request": {
            k: {op: c / total for op, c in v.items()} for k, v in blocking.items()
        },
        "components": _components(router, spec),
        "sniffio_blocked": any(isinstance(f, _MissingSniffio) for f in sys.meta_path),
    }


def measure_fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """Wall time of a group route of 5 backends of 50 ms against a proxy route of one."""
    from tests.bench.invoke import CONTEXT, http_event, load_router

    router = load_router(spec["env"])
    one, five = http_event("/v1/slow/one"), http_event("/v1/slow/five")
    times: dict[str, list[float]] = {"one": [], "five": []}
    statuses: dict[str, list[int]] = {"one": [], "five": []}
    for _ in range(3):
        router.handler(one, CONTEXT)
        router.handler(five, CONTEXT)
    for _ in range(spec["n"]):
        for name, event in (("one", one), ("five", five)):
            t0 = time.perf_counter()
            statuses[name].append(_status(router.handler(event, CONTEXT)))
            times[name].append((time.perf_counter() - t0) * 1000)
    body = json.loads(router.handler(five, CONTEXT)["body"])
    return {
        "ms": {k: statistics.median(v) for k, v in times.items()},
        "statuses": {k: sorted(set(v)) for k, v in statuses.items()},
        "group_members": sorted(body) if isinstance(body, dict) else None,
    }


def measure_calls(spec: dict[str, Any]) -> dict[str, Any]:
    """AWS calls per request, blocking (on the invoking thread) and background, by outcome."""
    from tests.bench.infra import TINY_LIMIT, forged_key, unknown_key
    from tests.bench.invoke import CONTEXT, AwsCalls, http_event, load_router

    calls = AwsCalls()
    calls.attach()
    router = load_router(spec["env"])
    calls.attach_transport(router)
    calls.attach_usage(router)
    me = threading.get_ident()
    keys = spec["keys"]
    n = spec["n"]

    usage = router.app.gateway.usage

    def run(events: list[dict[str, Any]]) -> dict[str, Any]:
        mark = calls.mark()
        statuses: dict[int, int] = {}
        for event in events:
            status = _status(router.handler(event, CONTEXT))
            statuses[status] = statuses.get(status, 0) + 1
            if usage is not None:
                # What the Lambda extension does after each invocation, on a thread of its own.
                flusher = threading.Thread(target=usage.flush)
                flusher.start()
                flusher.join()
        blocking = calls.since(mark, me)
        every = calls.since(mark)
        return {
            "statuses": statuses,
            "blocking_per_request": sum(blocking.values()) / len(events),
            "background_per_request": (sum(every.values()) - sum(blocking.values())) / len(events),
            "blocking_ops": dict(blocking),
            "background_ops": dict(every - blocking),
        }

    keyed = "/v1/keyed"
    out: dict[str, Any] = {"components": _components(router, spec)}
    if keys.get("bench"):
        admitted = http_event(keyed, {"x-api-key": keys["bench"]})
        router.handler(admitted, CONTEXT)  # the first use of a key reads it; later ones hit the cache
        out["admitted"] = run([admitted] * n)
    if keys.get("tiny"):
        tiny = http_event(keyed, {"x-api-key": keys["tiny"]})
        for _ in range(TINY_LIMIT + 1):
            router.handler(tiny, CONTEXT)
        out["over_quota"] = run([tiny] * n)
    if keys:
        unknown = http_event(keyed, {"x-api-key": unknown_key()})
        router.handler(unknown, CONTEXT)
        out["unknown_key_repeated"] = run([unknown] * n)
        out["unknown_key_distinct"] = run([http_event(keyed, {"x-api-key": unknown_key()}) for _ in range(n)])
        out["forged_key_distinct"] = run([http_event(keyed, {"x-api-key": forged_key()}) for _ in range(n)])
    out["malformed_key"] = run([http_event(keyed, {"x-api-key": "not-a-key"})] * n)
    out["public_route"] = run([http_event("/v1/ping")] * n)
    return out


def measure_rss(spec: dict[str, Any]) -> dict[str, Any]:
    """RSS of one container after warm-up, halfway and after `n` requests of a mixed load."""
    from tests.bench.infra import unknown_key
    from tests.bench.invoke import CONTEXT, http_event, load_router

    router = load_router(spec["env"])
    usage = router.app.gateway.usage
    keys = spec["keys"]
    public = http_event("/v1/ping")
    keyed = http_event("/v1/keyed", {"x-api-key": keys["bench"]}) if keys.get("bench") else public
    for _ in range(200):
        router.handler(public, CONTEXT)
        router.handler(keyed, CONTEXT)
    if usage is not None:
        usage.flush()
    gc.collect()
    n = spec["n"]
    checkpoints = {"0": _rss_mb()}
    statuses: dict[int, int] = {}
    # Per 20 requests: 17 public (each with a fresh request id), 2 keyed, 1 unknown key that is new
    # each time: the unknown keys outnumber the key cache, so only its bound keeps memory flat.
    for i in range(n):
        slot = i % 20
        if slot < 17:
            event = http_event("/v1/ping", {"x-request-id": f"bench-{i}"})
        elif slot < 19:
            event = keyed
        else:
            event = http_event("/v1/keyed", {"x-api-key": unknown_key()}) if keys else public
        status = _status(router.handler(event, CONTEXT))
        statuses[status] = statuses.get(status, 0) + 1
        if usage is not None and slot % 10 == 9:
            usage.flush()  # as the extension would, in batches of ten to keep the run short
        if i + 1 in (n // 2, n):
            gc.collect()
            checkpoints[str(i + 1)] = _rss_mb()
    return {"rss_mb": checkpoints, "statuses": statuses, "requests": n}


def measure_race(spec: dict[str, Any]) -> dict[str, Any]:
    """`total` requests on one key, spread over `containers` warm containers running at once."""
    from tests.bench.invoke import CONTEXT, http_event, load_router

    containers, total = spec["containers"], spec["total"]
    event = http_event("/v1/keyed", {"x-api-key": spec["keys"]["race"]})
    ready = threading.Barrier(containers + 1)
    lock = threading.Lock()
    statuses: dict[int, int] = {}
    errors: list[str] = []
    share = [total // containers + (1 if i < total % containers else 0) for i in range(containers)]

    def container(i: int) -> None:
        try:
            with lock:  # one init at a time; each container keeps the event loop of its thread
                router = load_router(spec["env"])
        except Exception as exc:  # noqa: BLE001 - reported in the result
            errors.append(repr(exc))
            ready.abort()
            return
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        for _ in range(share[i]):
            status = _status(router.handler(event, CONTEXT))
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=container, args=(i,)) for i in range(containers)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    try:
        ready.wait()
        t0 = time.perf_counter()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    return {"statuses": statuses, "seconds": time.perf_counter() - t0, "errors": errors}


def measure_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """cProfile (CPU time) of warm invocations: the public proxy route and the full (keyed) route."""
    import cProfile
    import pstats

    from tests.bench.invoke import CONTEXT, http_event, load_router

    router = load_router(spec["env"])
    usage = router.app.gateway.usage
    events = {"public": http_event("/v1/ping")}
    if spec["keys"].get("bench"):
        events["full"] = http_event("/v1/keyed", {"x-api-key": spec["keys"]["bench"]})
    out: dict[str, Any] = {}
    for name, event in events.items():
        for _ in range(50):
            router.handler(event, CONTEXT)
        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the backend or AWS
        profiler.enable()
        for _ in range(spec["n"]):
            router.handler(event, CONTEXT)
        profiler.disable()
        if usage is not None:
            usage.flush()
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = []
        for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
            where = file.split("site-packages/")[-1].split("/tollway/tollway/")[-1]
            rows.append(
                {
                    "function": f"{func} ({where}:{line})",
                    "calls_per_request": calls / spec["n"],
                    "self_us": tottime / spec["n"] * 1e6,
                    "cumulative_us": cumtime / spec["n"] * 1e6,
                }
            )
        out[name] = {
            "profiled_us_per_request": total / spec["n"] * 1e6,
            "top_self": sorted(rows, key=lambda r: -r["self_us"])[:15],
            "top_cumulative": sorted(rows, key=lambda r: -r["cumulative_us"])[:40],
        }
    return out


def measure_cost(spec: dict[str, Any]) -> dict[str, Any]:
    from tests.bench.cost import measure_cost as cost

    return cost(spec)


MEASURES = {
    "cost": measure_cost,
    "profile": measure_profile,
    "cpu": measure_cpu,
    "fanout": measure_fanout,
    "calls": measure_calls,
    "rss": measure_rss,
    "race": measure_race,
    "grpc": lambda spec: __import__("tests.bench.grpc_bench", fromlist=["measure"]).measure(spec),
}


class _MissingSniffio:
    """Makes `import sniffio` fail as it does when the package is not installed.

    The search over sys.path still runs (and fails) on every attempt, as it does for a
    missing module, which httpcore retries on every request.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name != "sniffio" and not name.startswith("sniffio."):
            return None
        import importlib.machinery

        elsewhere = [p for p in sys.path if not (Path(p) / "sniffio").exists()]
        importlib.machinery.PathFinder.find_spec(name, elsewhere)
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def main() -> None:
    name, spec_path, out_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(spec_path.read_text())
    if spec.get("block_sniffio"):
        sys.meta_path.insert(0, _MissingSniffio())
    result = MEASURES[name](spec)
    out_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
