"""`make bench`: Tollway against a floor and peers, every ratio from one run on this machine.

    uv run --frozen python -m tests.bench.run

Starts everything it measures on 127.0.0.1 (nginx, fast-gateway, uvicorn servers, the moto
server, a loopback SQS sink), stops all of it, prints one table and writes
bench/results.json. BENCH_SECONDS (default 3) and BENCH_ROUNDS (default 3) size the wrk runs.
BENCH_ONLY=cpu,calls,... runs only those measures (the keys of results.json), for one row's
work on a shared machine; its results go to bench/work/results-only.json, not bench/results.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import coldstart, dev_server, grpc_bench, servers, setup
from tests.bench.infra import KEY_CACHE_SIZE, RACE_LIMIT, Aws, provision_aws, write_infra
from tests.bench.load import interleaved
from tests.bench.procs import ROOT, WORK, Procs
from tests.bench.table import render, rows

RESULTS = ROOT / "bench" / "results.json"
COMMAND = "make bench  # uv run --frozen python -m tests.bench.run"


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def worker(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one in-process measure in a fresh interpreter; its gateway logs go to bench/work/."""
    spec_path = WORK / f"spec-{name}.json"
    out_path = WORK / f"result-{name}.json"
    out_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec))
    with open(WORK / f"worker-{name}.log", "wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.worker", spec["measure"], str(spec_path), str(out_path)],
            cwd=ROOT,
            env={**os.environ, **spec["env"]},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=spec.get("timeout_s", 240),
            check=False,
        )
    if done.returncode != 0 or not out_path.exists():
        tail = (WORK / f"worker-{name}.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"measure {name} failed (exit {done.returncode}):\n{tail}")
    return json.loads(out_path.read_text())


ONLY = {k for k in os.environ.get("BENCH_ONLY", "").split(",") if k}


def attempt(results: dict[str, Any], key: str, fn, *args: Any, **kwargs: Any) -> Any:
    """Run one measure; a failure is recorded as its result, and the others still run."""
    if ONLY and key not in ONLY:
        return None
    started = time.monotonic()
    log(f"{key} ...")
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one broken measure must not hide the others
        value = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"{key} failed: {value['error']}")
    results[key] = value
    log(f"{key} done in {time.monotonic() - started:.1f} s")
    return value


def in_process(
    results: dict[str, Any], aws: Aws, env: dict[str, str], sink_env: dict[str, str], backend: str
) -> None:
    base = {"backend": backend, "keys": aws.keys}
    cpu = {**base, "measure": "cpu", "env": sink_env, "rounds": 5, "n": 200, "transports": True}
    attempt(results, "cpu", worker, "cpu", cpu)
    no_sniffio = {**cpu, "rounds": 3, "block_sniffio": True}
    attempt(results, "cpu_without_sniffio", worker, "cpu-no-sniffio", no_sniffio)
    attempt(results, "fanout", worker, "fanout", {**base, "measure": "fanout", "env": env, "n": 15})
    attempt(results, "calls", worker, "calls", {**base, "measure": "calls", "env": env, "n": 20})
    if aws.keys.get("race"):
        race = {**base, "measure": "race", "env": env, "containers": 20, "total": 500}
        attempt(results, "race", worker, "race", race)
    attempt(results, "rss", worker, "rss", {**base, "measure": "rss", "env": sink_env, "n": 20_000})
    # Rows C1-C3: every DynamoDB and SQS call metered on the emulator (tests/bench/cost.py).
    attempt(results, "cost", worker, "cost", {**base, "measure": "cost", "env": env, "timeout_s": 900})
    attempt(results, "profile", worker, "profile", {**base, "measure": "profile", "env": sink_env, "n": 200})


def under_load(
    results: dict[str, Any], procs: Procs, backend: str, sink_env: dict[str, str], fast_gateway: bool
) -> dict[str, Any]:
    seconds = float(os.environ.get("BENCH_SECONDS", "3"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    tollway, info = servers.python_server(procs, "tollway", sink_env)
    results["server"] = json.loads(info.read_text())
    plain, plain_info = servers.python_server(
        procs, "tollway", sink_env, "--loop", "asyncio", "--http", "h11"
    )
    results["server_plain"] = json.loads(plain_info.read_text())
    no_usage_env = {k: v for k, v in sink_env.items() if k != "TOLLWAY_USAGE_QUEUE_URL"}
    no_usage, _ = servers.python_server(procs, "tollway", no_usage_env)
    naive, _ = servers.python_server(procs, "naive", {"BENCH_BACKEND": backend})
    targets = {
        "direct": backend,
        "tollway": tollway,
        "tollway_asyncio_h11": plain,
        "tollway_no_usage": no_usage,
        "naive": naive,
        "nginx": servers.nginx_proxy(procs, backend),
    }
    if fast_gateway:
        targets["fast_gateway"] = servers.fast_gateway(procs, backend)
    path = "/v1/ping"
    log(f"wrk -t1 -c32 -d{seconds:g}s x {rounds} rounds on {', '.join(targets)}")
    c32 = interleaved({k: v + path for k, v in targets.items()}, 32, seconds, rounds)
    results["throughput"] = {k: s.as_dict() for k, s in c32.items()}
    log(f"wrk -t1 -c1 -d{seconds:g}s x {rounds} rounds on direct, tollway")
    c1 = interleaved({"direct": backend + path, "tollway": tollway + path}, 1, seconds, rounds)
    results["one_connection"] = {k: s.as_dict() for k, s in c1.items()}
    return {"seconds": seconds, "rounds": rounds}


FLOOD_DELAY_MS = 200


def flooded(results: dict[str, Any], procs: Procs, aws: Aws, sink_env: dict[str, str]) -> dict[str, Any]:
    """Row 6c: public p99 (wrk -c8) idle, and while 200 forged + 200 unknown keys a pass are
    looked up against a DynamoDB answering 200 ms late; rounds interleaved."""
    from tests.bench.flood import Flood
    from tests.bench.infra import forged_key, unknown_key
    from tests.bench.load import Series, wrk

    seconds = float(os.environ.get("BENCH_SECONDS", "3"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    slow_env = {"BENCH_DYNAMODB": aws.url, "BENCH_DYNAMODB_DELAY_MS": str(FLOOD_DELAY_MS)}
    slow, _ = servers.python_server(procs, "slow-dynamodb", slow_env)
    gateway, _ = servers.python_server(procs, "tollway", {**sink_env, "AWS_ENDPOINT_URL_DYNAMODB": slow})
    secret = aws.env["BENCH_KEY_SECRET"]

    def keys() -> list[str]:
        return [forged_key() for _ in range(200)] + [unknown_key(secret) for _ in range(200)]

    public = gateway + "/v1/ping"
    wrk(public, 8, 1)
    idle, busy = Series([]), Series([])
    sent, statuses = 0, {}
    for _ in range(rounds):
        idle.runs.append(wrk(public, 8, seconds))
        with Flood(gateway + "/v1/keyed", keys) as flood:
            busy.runs.append(wrk(public, 8, seconds))
        sent += flood.sent
        for status, count in flood.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "delay_ms": FLOOD_DELAY_MS,
        "idle": idle.as_dict(),
        "flood": busy.as_dict(),
        "flood_requests": sent,
        "flood_statuses": statuses,
    }


def _grpc_env(procs: Procs, infra: Path, env: dict[str, str]) -> dict[str, Any]:
    """Rows G1-G2: the gRPC service in its own process, and an infra folder with a gRPC route."""
    url = grpc_bench.grpc_service(procs)
    return {"url": url, "env": {**env, "TOLLWAY_INFRA_DIR": str(grpc_bench.write_infra(infra, url))}}


def main() -> int:
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    missing = setup.ensure_apt()
    fast_gateway = setup.ensure_fast_gateway()
    starlette = setup.ensure_starlette()
    results: dict[str, Any] = {
        "command": COMMAND,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "setup": {"missing": missing, "fast_gateway": fast_gateway, "starlette": starlette},
        "sniffio_error": setup.sniffio_ok(),
        "key_cache_size": KEY_CACHE_SIZE,
        "race_limit": RACE_LIMIT,
    }
    with Procs() as procs:
        if "nginx" in missing:
            backend, _ = servers.python_server(procs, "backend", {})
            results["backend"] = "uvicorn loopback backend (nginx missing)"
        else:
            backend = servers.nginx_backend(procs)
            results["backend"] = "nginx 1 worker, return 200 with a static 228-byte JSON"
        slow, _ = servers.python_server(procs, "backend", {})
        sink, _ = servers.python_server(procs, "sqs-sink", {})
        moto = servers.moto_server(procs)
        infra = write_infra(Path(tempfile.mkdtemp(prefix="infra-", dir=WORK)), backend, slow)
        aws = provision_aws(moto, ["bench", "tiny", "race"])
        results["auth_error"] = aws.auth_error
        env = {**aws.env, "TOLLWAY_INFRA_DIR": str(infra)}
        sink_env = {**env, "AWS_ENDPOINT_URL_SQS": sink}
        if starlette:
            in_process(results, aws, env, sink_env, backend)
        if "wrk" not in missing:
            attempt(results, "load", under_load, results, procs, backend, sink_env, fast_gateway)
            attempt(results, "dev_server", dev_server.measure, procs, infra, sink_env)
            if aws.keys:
                attempt(results, "flood", flooded, results, procs, aws, sink_env)
        attempt(results, "cold_start", coldstart.measure, env)
        grpc_env = attempt(results, "grpc_service", _grpc_env, procs, infra, env)
        if isinstance(grpc_env, dict) and "error" not in grpc_env:
            spec = {"measure": "grpc", "env": grpc_env["env"], "grpc_url": grpc_env["url"]}
            spec.update(rounds=5, n=400)
            attempt(results, "grpc", worker, "grpc", spec)
            attempt(results, "cold_start_grpc", coldstart.measure, grpc_env["env"], 7, grpc_bench.PATH)
    results["seconds"] = round(time.monotonic() - started, 1)
    table = rows(results)
    results["table"] = [row.as_dict() for row in table]
    results["markdown"] = render(table)
    target = WORK / "results-only.json" if ONLY else RESULTS
    target.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(table))
    print(
        f"\n{COMMAND}: {results['seconds']} s, load average {results['machine']['load'][0]:.1f} "
        f"on {results['machine']['cpus']} CPUs; details in {target.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
