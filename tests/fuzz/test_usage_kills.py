"""A crash loses no billable usage (issue 19, item 1): kill the gateway at random moments under load.

The gateway runs in a process of its own under uvicorn, as `tollway dev` runs it, with real
API keys, the real quota admission (exact counters on a serialized moto server, as DynamoDB
applies writes to an item one at a time) and the real emitter; the usage function and its
true-up run beside it as `tollway dev` runs them (tollway.dev.demo). Threads keep keyed
requests coming for three consumers on three plans while the gateway is killed with
SIGKILL at random moments and started again: each kill takes the events of its last
~200 ms with it, with no log line. Nobody runs anything by hand afterwards: once the queue
is empty and the true-up has run, `tollway usage reconcile` must show billed == counted for
every consumer, and the bill must hold units no event attributed (the test saw the loss).
Billed is max(attributed, counted), so that equality alone would hold for a counter that
counted too much; the counter is held to what the clients saw (every unit answered 200 is
counted; nothing beyond the requests whose answer a kill cut off), and each consumer's
amount due to its plan's price, lost units included.

`make test`: 3 kills in a few seconds. `make fuzz`: 10 kills, longer load.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from tollway.dev.demo import start_usage_pipeline
from tollway.dev.serve import free_port

from tests.backends import loopback_backend
from tests.conftest import ROOT
from tests.fuzz.stack import issue_key
from tests.infra_files import write_infra
from tests.integration.quota.conftest import atomic_moto_url  # noqa: F401 - serialized moto
from tests.integration.usage.conftest import queue_depth, wait_for

LONG = int(os.environ.get("TOLLWAY_FUZZ_EXAMPLES", "100")) >= 1000
KILLS = 10 if LONG else 3
UP_S = (1.0, 4.0) if LONG else (0.4, 1.2)  # how long the gateway serves before each kill
CLIENTS = 6

ROUTES = """\
- id: items.get
  path: /v1/items/{id}
  methods: [GET]
  auth: [api_key]
  cost: 1
  backends: [{name: b, service: svc, path: "/echo/items/{id}"}]
- id: reports.post
  path: /v1/reports
  methods: [POST]
  auth: [api_key]
  cost: 3
  backends: [{name: b, service: svc, path: /echo/reports, method: POST}]
"""
RATE = "{limit: 100000, per: second}"
PLANS = f"""\
plans:
  daily: {{rate: {RATE}, quota: {{limit: 100000000, per: day}}, price: {{per_1000_units: 0.2}}}}
  monthly: {{rate: {RATE}, quota: {{limit: 100000000, per: month}}, price: {{per_1000_units: 0.5}}}}
  ratelimited: {{rate: {RATE}, price: {{per_1000_units: 1}}}}
"""


class Gateway:
    """The gateway process, started again on the same port after each kill."""

    def __init__(self, infra: Path, env: dict[str, str], log: Path) -> None:
        self.infra, self.env, self.log = infra, env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fuzz.kill_gateway", str(self.infra), str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                httpx.get(self.url + "/nowhere", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("the gateway did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class Load:
    """Client threads sending keyed requests as fast as the gateway answers."""

    def __init__(self, url: str, keys: dict[str, str]) -> None:
        self.url, self.keys = url, keys
        self.statuses: Counter[int] = Counter()
        self.refused = 0
        # Units per consumer of the answers the clients saw (200), and of the requests whose
        # answer they never saw (the gateway died, or was down): what the counters may also hold.
        self.answered: Counter[str] = Counter()
        self.unanswered: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        consumers = sorted(self.keys)
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.is_set():
                consumer = rng.choice(consumers)
                key = {"x-api-key": self.keys[consumer]}
                report = rng.random() < 0.2
                try:
                    if report:
                        answer = http.post("/v1/reports", headers=key, content=b"{}")
                    else:
                        answer = http.get(f"/v1/items/{rng.randrange(100)}", headers=key)
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        self.answered[consumer] += 3 if report else 1
                except httpx.ConnectError:
                    self.refused += 1  # the gateway is down: the request never reached it
                    time.sleep(0.02)
                except httpx.TransportError:
                    self.refused += 1  # the gateway was killed mid-request: it may have counted it
                    self.unanswered[consumer] += 3 if report else 1
                    time.sleep(0.02)


@pytest.mark.timeout(900 if LONG else 180)
def test_kills_at_random_moments_lose_no_billable_usage(
    aws, moto_url, atomic_moto_url, serve, tmp_path, monkeypatch, capsys  # noqa: F811
):
    monkeypatch.chdir(tmp_path)
    env = {**aws, "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_DYNAMODB": atomic_moto_url}
    for name, value in {**env, "TOLLWAY_TRUE_UP_INTERVAL_S": "0.5"}.items():
        monkeypatch.setenv(name, value)
    infra = write_infra(tmp_path, {"svc": serve(loopback_backend)}, ROUTES, plans=PLANS)
    keys = {
        consumer: issue_key(infra, capsys, scopes="", plan=plan, consumer=consumer)
        for consumer, plan in (("ann", "daily"), ("bo", "monthly"), ("cy", "ratelimited"))
    }
    stop_usage = start_usage_pipeline(dict(os.environ), infra)
    gateway = Gateway(infra, dict(os.environ), tmp_path / "gateway.log")
    rng = random.Random()
    try:
        gateway.start()
        with Load(gateway.url, keys) as load:
            for _ in range(KILLS):
                time.sleep(rng.uniform(*UP_S))
                gateway.kill()
                gateway.start()
            time.sleep(rng.uniform(*UP_S))
        gateway.kill()  # the last one too: nothing is flushed at a shutdown that never comes
        assert gateway.kills == KILLS + 1
        assert load.statuses[200] > 50 * KILLS, load.statuses
        assert set(load.statuses) == {200}, load.statuses
        wait_for(lambda: queue_depth_of(env) == 0, timeout=120, what="usage queue drained")
        rows = wait_for(reconciled, timeout=60, what="billed == counted (the true-up runs by itself)")
    finally:
        gateway.stop()
        stop_usage()
    print(
        f"kills {gateway.kills}, answers {dict(load.statuses)}, cut off {load.refused}"
        f" (units unanswered {dict(load.unanswered)}); reconcile {rows}"
    )
    assert {row["consumer"] for row in rows} == set(keys)
    for row in rows:
        assert row["billed_units"] == row["quota_units"] > 0, row
        # billed is max(attributed, counted): it equals counted by construction unless events
        # were counted twice. What holds the counter itself to account is what the clients saw:
        # every answered unit counted, and nothing beyond the requests that went unanswered.
        consumer = row["consumer"]
        answered, unanswered = load.answered[consumer], load.unanswered[consumer]
        assert answered <= row["quota_units"] <= answered + unanswered, (row, answered, unanswered)
    # ... and billed at the consumer's plan's price, lost units included.
    prices = {"ann": Decimal("0.2"), "bo": Decimal("0.5"), "cy": Decimal("1")}
    for consumer in keys:
        report = json.loads(cli_out("usage", "report", "--consumer", consumer, "--period", month(), "--json"))
        assert Decimal(report["amount_due"]) == report["units"] * prices[consumer] / 1000, report
    # Each kill lost the events of its last flush interval: billed from the counters, unattributed.
    assert sum(row["unattributed_units"] for row in rows) > 0, rows


def queue_depth_of(env: dict[str, str]) -> int:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    return queue_depth(sqs, env["TOLLWAY_USAGE_QUEUE_URL"])


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """A `tollway` command as an operator runs it."""
    command = [sys.executable, "-m", "tollway.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), check=False)


def cli_out(*args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reconciled() -> list[dict] | None:
    """`tollway usage reconcile` for today's month, as an operator would run it; None until it matches."""
    done = cli("usage", "reconcile", "--period", month(), "--json")
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)["consumers"]

