"""Measure 5: a fresh process's import + init + first invocation, against `import boto3` alone."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.invoke import http_event
from tests.bench.procs import ROOT, WORK
from tests.lambda_router import ROUTER

COLD = Path(__file__).with_name("cold.py")
BUILD = ROOT / ".aws-sam" / "build"


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:]} failed: {done.stderr.strip()[-500:] or done.stdout.strip()[-500:]}")
    return elapsed


def _import_times(argv: list[str], env: dict[str, str], top: int = 8) -> list[dict[str, Any]]:
    """The slowest top-level imports of a cold start, by cumulative microseconds (-X importtime)."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 1:  # top-level imports only (nested ones are inside them)
            rows.append({"module": m.group(4), "cumulative_ms": int(m.group(2)) / 1000})
    return sorted(rows, key=lambda r: -r["cumulative_ms"])[:top]


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def built_size() -> dict[str, float] | None:
    """Unzipped size of the built RouterFunction and TollwayLayer, if `sam build` has run."""
    function, layer = BUILD / "RouterFunction", BUILD / "TollwayLayer"
    if not (function.exists() and layer.exists()):
        return None
    return {"function_mb": _size_mb(function), "layer_mb": _size_mb(layer)}


def write_table(infra: Path, env: dict[str, str]) -> None:
    """Compile the route table into the infra folder, as `sam build` does (build.mk)."""
    argv = ["routes", "check", "--infra", str(infra), "--write-table", str(infra)]
    code = "import sys; from tollway.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=ROOT, capture_output=True, check=True)


def layer_python() -> tuple[str, str]:
    """An interpreter with exactly the layer's packages (layers/tollway/requirements.txt), as
    Lambda has: the dev environment also holds tools (rich, click, pytest...) that libraries
    import when present (`import httpx` loads its CLI's rich and click, ~45 ms). Falls back
    to the dev environment if the venv cannot be made (no uv, offline without a cache)."""
    venv = WORK / "layer-venv"
    python = venv / "bin" / "python"
    uv = ROOT / ".tools" / "uv" / "bin" / "uv"
    try:
        subprocess.run(
            [str(uv), "venv", "-q", "--allow-existing", "--python", sys.executable, str(venv)], check=True
        )
        requirements = ROOT / "layers" / "tollway" / "requirements.txt"
        argv = [str(uv), "pip", "install", "-q", "--python", str(python), "-r", str(requirements)]
        subprocess.run(argv, check=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    except (OSError, subprocess.CalledProcessError) as exc:
        return sys.executable, f"dev environment (layer venv failed: {exc})"
    return str(python), "the layer's requirements only (layers/tollway/requirements.txt)"


def measure(env: dict[str, str], runs: int = 7, path: str = "/v1/ping") -> dict[str, Any]:
    python, environment = layer_python()
    layer = str(ROOT / "layers" / "tollway")  # the package, as the layer ships it under python/
    full_env = {**os.environ, **env, "PYTHONDONTWRITEBYTECODE": "0", "PYTHONPATH": layer}
    write_table(Path(env["TOLLWAY_INFRA_DIR"]), full_env)
    event = WORK / f"cold-event{path.replace('/', '-')}.json"
    event.write_text(json.dumps(http_event(path)))
    gateway = [python, str(COLD), str(ROUTER), str(event)]
    boto3 = [python, "-c", "import boto3"]
    _timed(gateway, full_env)  # bytecode caches written once, as the built layer ships them
    _timed(boto3, full_env)
    times: dict[str, list[float]] = {"gateway": [], "boto3": []}
    for _ in range(runs):
        times["gateway"].append(_timed(gateway, full_env))
        times["boto3"].append(_timed(boto3, full_env))
    report = subprocess.run(
        [*gateway, "--report"], env=full_env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {
        "environment": environment,
        "ms": {k: statistics.median(v) for k, v in times.items()},
        "runs": times,
        "loaded": json.loads(report.stdout.strip().splitlines()[-1]),
        "slowest_imports": _import_times(gateway, full_env),
        "built": built_size(),
    }


def main() -> int:
    """Row 5 alone (`python -m tests.bench.coldstart`): the bench's infra, a backend, the moto server."""
    import tempfile

    from tests.bench import servers
    from tests.bench.infra import provision_aws, write_infra
    from tests.bench.procs import Procs

    WORK.mkdir(parents=True, exist_ok=True)
    with Procs() as procs:
        url, _ = servers.python_server(procs, "backend", {})
        backend = url + "/echo"  # answers any path below it with 200
        moto = servers.moto_server(procs)
        infra = write_infra(Path(tempfile.mkdtemp(prefix="infra-", dir=WORK)), backend, backend)
        aws = provision_aws(moto, ["bench"])
        env = {**aws.env, "TOLLWAY_INFRA_DIR": str(infra)}
        result = measure(env)
        if "--importtime" in sys.argv:  # the whole -X importtime tree, for reading
            event = WORK / "cold-event.json"
            python, _ = layer_python()
            argv = [python, "-X", "importtime", str(COLD), str(ROUTER), str(event)]
            full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT / "layers" / "tollway")}
            done = subprocess.run(argv, env=full_env, cwd=ROOT, capture_output=True, text=True)
            (WORK / "cold-importtime.txt").write_text(done.stderr)
    ms = result["ms"]
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    ratio = ms["gateway"] / ms["boto3"]
    print(f"cold start {ms['gateway']:.0f} ms vs import boto3 {ms['boto3']:.0f} ms: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
