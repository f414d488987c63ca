"""wrk runs against servers on loopback, parsed; targets interleaved round by round."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers plus socket errors: a run with any is not a number

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.rps > 0


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(output: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return WrkResult(rps, p50, p99, errors)


def wrk(url: str, connections: int, seconds: float, cpu: str | None = None) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", cpu, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse(done.stdout)


@dataclass
class Series:
    runs: list[WrkResult]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    def median(self, field: str) -> float:
        return statistics.median(getattr(r, field) for r in self.runs)

    def as_dict(self) -> dict:
        return {
            "rps": self.median("rps"),
            "p50_ms": self.median("p50_ms"),
            "p99_ms": self.median("p99_ms"),
            "errors": sum(r.errors for r in self.runs),
            "runs": [r.__dict__ for r in self.runs],
        }


def interleaved(
    targets: dict[str, str], connections: int, seconds: float, rounds: int, cpu: str | None = None
) -> dict[str, Series]:
    """`rounds` runs per target, A B C A B C ..., after a short warm-up of each: noise spreads evenly."""
    for url in targets.values():
        wrk(url, connections, 1)
    series = {name: Series([]) for name in targets}
    for _ in range(rounds):
        for name, url in targets.items():
            series[name].runs.append(wrk(url, connections, seconds, cpu))
    return series
