"""Rows D1-D3: `tollway dev` under a minute of load, against the bare worker of the same run.

`tollway dev` is started as a user starts it (a subprocess, in a folder of its own, with its
own emulators and usage function) on the bench's infra folder, so that it proxies the same
route to the same backend as the bare worker (`tests.bench.serve tollway`, usage sent to the
loopback SQS sink). Load: wrk -c32 on the public route, in windows of `window` seconds back
to back for `seconds`; the bare worker gets one window before and one after (with `tollway
dev` stopped, so its emulators' leftover work does not slow it).

BENCH_DEV_SECONDS (default 60) and BENCH_DEV_WINDOW (default 10) size the run.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.bench import servers
from tests.bench.infra import STAGE
from tests.bench.load import wrk
from tests.bench.procs import ROOT, WORK, Procs, free_port, wait_http
from tests.bench.table import Row

PATH = "/v1/ping"


def measure(procs: Procs, infra: Path, sink_env: dict[str, str]) -> dict[str, Any]:
    seconds = float(os.environ.get("BENCH_DEV_SECONDS", "60"))
    window = float(os.environ.get("BENCH_DEV_WINDOW", "10"))
    bare, _ = servers.python_server(procs, "tollway", sink_env)
    cwd = Path(tempfile.mkdtemp(prefix="dev-", dir=WORK))
    port, aws_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "tollway.cli",
        "dev",
        "--infra",
        str(infra),
        "--template",
        str(ROOT / "template.yaml"),
        "--stage",
        STAGE,
        "--port",
        str(port),
        "--aws-port",
        str(aws_port),
        "--no-demo-backends",
    ]
    log = WORK / "tollway-dev.log"
    log.unlink(missing_ok=True)
    dev_proc = procs.start("tollway-dev", argv, cwd=cwd)
    dev = f"http://127.0.0.1:{port}"
    wait_http(dev + PATH, dev_proc, timeout_s=90)
    wrk(bare + PATH, 32, 1)
    wrk(dev + PATH, 32, 1)
    before = wrk(bare + PATH, 32, window)
    windows = [wrk(dev + PATH, 32, window) for _ in range(max(2, round(seconds / window)))]
    # Counted while it runs: at shutdown the emitter logs whatever it still holds.
    unsent = sum(1 for line in log.open(errors="replace") if '"usage_event_unsent"' in line)
    sidecars = [
        int(p)
        for t in Path(f"/proc/{dev_proc.pid}/task").iterdir()
        for p in (t / "children").read_text().split()
    ]
    procs.stop(dev_proc)
    # Its sidecars end when their stdin closes; the bare worker's last window starts after.
    lingering = _wait_gone(sidecars, 20.0)
    after = wrk(bare + PATH, 32, window)
    return {
        "window_s": window,
        "dev": [w.__dict__ for w in windows],
        "bare": [before.__dict__, after.__dict__],
        "unsent_during_load": unsent,
        "sidecars_left_after_20_s": lingering,
        "requests_to_dev": round(sum(w.rps for w in windows) * window),
    }


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in pids if Path(f"/proc/{p}").exists()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def rows(r: dict[str, Any]) -> list[Row]:
    d = r.get("dev_server")
    if d is None:
        return [Row("D1", "`tollway dev` under load", "not run", "wrk missing", "", "≥ 0.80x", "error")]
    if "error" in d:
        why = str(d["error"]).splitlines()[0][:120]
        return [Row("D1", "`tollway dev` under load", "error", why, "", "≥ 0.80x", "error")]
    errors = sum(w["errors"] for w in d["dev"] + d["bare"])
    if errors:
        return [
            Row("D1", "`tollway dev` under load", "error", f"{errors} failed answers", "", "≥ 0.80x", "error")
        ]
    dev = [w["rps"] for w in d["dev"]]
    bare = statistics.median(w["rps"] for w in d["bare"])
    window = d["window_s"]
    total = window * len(dev)
    mine = statistics.median(dev)
    ratio = mine / bare
    drift = dev[-1] / dev[0]
    first, last = d["bare"][0]["rps"], d["bare"][1]["rps"]
    return [
        Row(
            "D1",
            f"req/s, wrk -c32 for {total:g} s, `tollway dev` (its own emulators and usage function)"
            f", public proxy route (median of {window:g}-s windows)",
            f"{mine:,.0f} req/s",
            f"bare worker {bare:,.0f} req/s (before {first:,.0f}, after {last:,.0f})",
            f"{ratio:.2f}x",
            "≥ 0.80x",
            "met" if ratio >= 0.8 else "NOT MET",
        ),
        Row(
            "D2",
            f"… last {window:g} s vs first {window:g} s of that minute",
            f"{dev[-1]:,.0f} req/s",
            f"first {window:g} s {dev[0]:,.0f} req/s",
            f"{drift:.2f}x",
            "≥ 0.90x",
            "met" if drift >= 0.9 else "NOT MET",
        ),
        Row(
            "D3",
            "… usage events the dev emulator could not take in time (to the unsent log, replayable)",
            f"{d['unsent_during_load']:,}",
            f"of {d['requests_to_dev']:,} requests",
            f"{d['unsent_during_load'] / max(1, d['requests_to_dev']):.2f}",
            "—",
            "info",
        ),
    ]


def main() -> int:
    """Only these rows, with the bench's own setup: `python -m tests.bench.dev_server`."""
    import json

    from tests.bench.infra import provision_aws, write_infra
    from tests.bench.table import render

    WORK.mkdir(parents=True, exist_ok=True)
    with Procs() as procs:
        backend = servers.nginx_backend(procs)
        slow, _ = servers.python_server(procs, "backend", {})
        sink, _ = servers.python_server(procs, "sqs-sink", {})
        aws = provision_aws(servers.moto_server(procs), [])
        infra = write_infra(Path(tempfile.mkdtemp(prefix="infra-", dir=WORK)), backend, slow)
        sink_env = {**aws.env, "TOLLWAY_INFRA_DIR": str(infra), "AWS_ENDPOINT_URL_SQS": sink}
        try:
            result: dict[str, Any] = measure(procs, infra, sink_env)
        except Exception as exc:  # noqa: BLE001 - shown as the row's error
            result = {"error": f"{type(exc).__name__}: {exc}"}
    (WORK / "dev_server.json").write_text(json.dumps(result, indent=2) + "\n")
    print(render(rows({"dev_server": result})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
