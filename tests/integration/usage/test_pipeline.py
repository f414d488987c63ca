"""Requests -> events -> SQS -> usage function -> totals -> `tollway usage report`, on loopback."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tollway import aws as tollway_aws
from tollway import cli
from tollway.aws.sqs import LeanSqs
from tollway.dev.sqs_poller import start_poller
from tollway.functions.usage import build_handler
from tollway.recording.emitter import UnsentLog
from tollway.usage.billing import BatchResult, Ledger, MessageKey, prices
from tollway.usage.consumer import UsageConsumer

from tests.lean import SQS_CONFIG, lean_sqs

from .conftest import Relay, Stack, build_stack, queue_depth, wait_for


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def report(stack: Stack, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    code = cli.main(["usage", "report", "--json", "--table", stack.env["TOLLWAY_USAGE_TABLE"], *args])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def drain(stack: Stack, handler: Callable[..., Any], cleanup: list[Callable[[], None]]) -> None:
    """Run the usage function on the queue, as Lambda would, until the queue is empty."""
    queue = stack.env["TOLLWAY_USAGE_QUEUE_URL"]
    wait_for(lambda: stack.emitter.pending() == 0, what="emitter flushed")
    cleanup.append(start_poller(queue, handler, stack.sqs, retry_visibility_s=0))
    wait_for(lambda: queue_depth(stack.sqs, queue) == 0, what="queue drained")


def traffic(url: str, stack: Stack) -> None:
    """acme (pro): 26 GETs (1 unit) + 4 POSTs (5 units) admitted, then 2 refused (429);
    beta (free): 7 GETs; one request without a key (401, no consumer)."""
    stack.admission.limit = 30
    with httpx.Client(base_url=url) as http:
        for i in range(26):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
        for _ in range(4):
            assert (
                http.post("/v1/reports", headers={"x-api-key": "acme:pro"}, content=b"{}").status_code == 200
            )
        for i in range(2):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 429
        for i in range(7):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "beta:free"}).status_code == 200
        assert http.get("/v1/items/1").status_code == 401


ACME = {
    "consumer": "acme",
    "plan": "pro",
    "requests": 30,
    "rejected": 2,
    "units": 46,
    "amount_due": "0.023",
    "currency": "USD",
    "routes": {"items.get": {"requests": 26, "units": 26}, "reports.post": {"requests": 4, "units": 20}},
    "plans": {"pro": {"requests": 30, "units": 46, "amount_due": "0.023"}},
    "unattributed_units": 0,
}
BETA = {
    "consumer": "beta",
    "plan": "free",
    "requests": 7,
    "rejected": 0,
    "units": 7,
    "amount_due": "0.00",
    "currency": "USD",
    "routes": {"items.get": {"requests": 7, "units": 7}},
    "plans": {"free": {"requests": 7, "units": 7, "amount_due": "0.00"}},
    "unattributed_units": 0,
}


def test_every_request_is_billed_exactly_once(stack, serve, cleanup, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    traffic(serve(stack.app), stack)
    drain(stack, build_handler(stack.settings), cleanup)

    assert report(stack, capsys, "--period", month(), "--consumer", "acme") == {**ACME, "period": month()}
    assert report(stack, capsys, "--period", today()) == {
        "period": today(),
        "consumers": [{**ACME, "period": today()}, {**BETA, "period": today()}],
    }
    capsys.readouterr()
    assert (
        cli.main(["usage", "report", "--period", month(), "--table", stack.env["TOLLWAY_USAGE_TABLE"]]) == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        f"period {month()}",
        "CONSUMER  PLAN  REQUESTS  REJECTED  UNITS  AMOUNT DUE",
        "acme      pro         30         2     46   0.023 USD",
        "beta      free         7         0      7    0.00 USD",
    ]


def test_duplicate_delivery_of_every_message_counts_once(
    stack, serve, cleanup, capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    traffic(serve(stack.app), stack)
    queue = stack.env["TOLLWAY_USAGE_QUEUE_URL"]
    wait_for(lambda: stack.emitter.pending() == 0, what="emitter flushed")
    sent = stack.emitter.stats.messages
    assert queue_depth(stack.sqs, queue) == sent
    # SQS delivers at least once: put a second copy of every message on the queue.
    bodies: list[str] = []
    while len(bodies) < sent:
        messages = stack.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        bodies += [m["Body"] for m in messages]
        for m in messages:
            stack.sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
    assert sum(len(json.loads(b)["events"]) for b in bodies) == 40
    for start in range(0, sent, 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        stack.sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    assert queue_depth(stack.sqs, queue) == 2 * sent

    drain(stack, build_handler(stack.settings), cleanup)
    assert report(stack, capsys, "--period", month(), "--consumer", "acme") == {**ACME, "period": month()}
    assert report(stack, capsys, "--period", month(), "--consumer", "beta") == {**BETA, "period": month()}


class CrashingLedger(Ledger):
    """Fails some transactions on their messages' first delivery: before the write, or after
    it committed (the usage function dies before it can answer SQS)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: set[MessageKey] = set()
        self.crashes = 0

    def _commit(self, messages: dict[MessageKey, Any], result: BatchResult) -> None:
        first = not any(key in self.seen for key in messages)
        self.seen.update(messages)
        bucket = self.crashes % 3 if first else 2
        if bucket == 0:
            self.crashes += 1
            raise RuntimeError("injected crash before the write")
        if bucket == 1:
            super()._commit(messages, result)
            self.crashes += 1
            raise RuntimeError("injected crash after the write")
        if first:
            self.crashes += 1
        super()._commit(messages, result)


def test_crash_mid_batch_still_counts_once(stack, serve, cleanup, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    stack.emitter.max_events = 1  # one message per event, as on Lambda: many transactions to crash
    traffic(serve(stack.app), stack)
    ledger = CrashingLedger(stack.dynamodb, stack.env["TOLLWAY_USAGE_TABLE"], prices(stack.config.plans))
    drain(stack, UsageConsumer(ledger).handle, cleanup)
    assert ledger.crashes >= 3  # a transaction per batch of up to 10 messages here: a few
    assert report(stack, capsys, "--period", month(), "--consumer", "acme") == {**ACME, "period": month()}
    assert report(stack, capsys, "--period", month(), "--consumer", "beta") == {**BETA, "period": month()}


def test_malformed_messages_reach_the_dlq_and_the_rest_is_counted(
    stack, serve, cleanup, capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    queue, dlq = (
        stack.env["TOLLWAY_USAGE_QUEUE_URL"],
        stack.sqs.get_queue_url(QueueName="UsageDLQ")["QueueUrl"],
    )
    garbage = ["not json", '{"version": 2}', json.dumps({"version": 1, "event_id": "x"})]
    stack.sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(garbage)]
    )
    traffic(serve(stack.app), stack)
    drain(stack, build_handler(stack.settings), cleanup)
    wait_for(lambda: queue_depth(stack.sqs, dlq) == 3, what="malformed messages in the DLQ")
    dead = stack.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in dead) == sorted(garbage)
    assert report(stack, capsys, "--period", month(), "--consumer", "acme") == {**ACME, "period": month()}


def test_sqs_outage_loses_nothing(
    aws, infra, backend_url, moto_url, serve, cleanup, capsys, monkeypatch, tmp_path
):
    """SQS down: responses unaffected; events kept and sent after recovery, or logged and replayed."""
    monkeypatch.chdir(tmp_path)
    relay = Relay(int(moto_url.rsplit(":", 1)[1]))
    cleanup.append(relay.close)
    unsent = io.StringIO()
    emitter_sqs = sqs_at(relay.url)
    stack = build_stack(aws, infra, backend_url, sqs=emitter_sqs, unsent=UnsentLog(unsent))
    url = serve(stack.app)
    with httpx.Client(base_url=url) as http:
        for i in range(12):  # outage long enough for the emitter to give up on these
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
        wait_for(lambda: stack.emitter.stats.logged == 12 and stack.emitter.pending() == 0, what="given up")
        stack.emitter.max_failures = 1000
        for i in range(5):  # outage, then recovery: these are kept and sent
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
        wait_for(lambda: stack.emitter.stats.logged == 17, what="logged at first failure")
        relay.open()
        wait_for(lambda: stack.emitter.pending() == 0, what="sent after recovery")
    assert stack.emitter.stats.sent == 5

    log = tmp_path / "router.log"
    log.write_text(
        "START RequestId: x\n"
        + "".join(f"2026-11-27T00:00:00Z\t{line}" for line in unsent.getvalue().splitlines(True))
    )
    queue = stack.env["TOLLWAY_USAGE_QUEUE_URL"]
    capsys.readouterr()
    assert cli.main(["usage", "replay", str(log), "--queue-url", queue]) == 0
    assert "replayed 17 event(s) of 17 found" in capsys.readouterr().out
    drain(stack, build_handler(stack.settings), cleanup)
    totals = report(stack, capsys, "--period", month(), "--consumer", "acme")
    assert (totals["requests"], totals["units"]) == (17, 17)

    assert cli.main(["usage", "replay", str(log), "--queue-url", queue]) == 0  # replaying twice is harmless
    wait_for(lambda: queue_depth(stack.sqs, queue) == 0, what="queue drained")
    totals = report(stack, capsys, "--period", month(), "--consumer", "acme")
    assert (totals["requests"], totals["units"]) == (17, 17)


def sqs_at(endpoint: str) -> LeanSqs:
    """The emitter's sender (as assemble wires it), at `endpoint`."""
    return lean_sqs(tollway_aws.session().client("sqs", endpoint_url=endpoint, config=SQS_CONFIG))


def test_no_aws_call_before_the_response(aws, infra, backend_url, serve):
    """Sends happen only on flush: 45 events are 2 messages (40 + 5), one SendMessageBatch call."""
    stack = build_stack(aws, infra, backend_url, interval_s=3600)
    url = serve(stack.app)
    with httpx.Client(base_url=url) as http:
        for i in range(45):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
    assert stack.emitter.sqs.calls == 0
    assert stack.emitter.pending() == 45
    stats = stack.emitter.flush()
    assert (stats.sent, stats.messages, stats.calls, stack.emitter.sqs.calls) == (45, 2, 1, 1)
    assert queue_depth(stack.sqs, stack.env["TOLLWAY_USAGE_QUEUE_URL"]) == 2


def test_settings_path(stack: Stack) -> None:
    assert Path(stack.settings.infra).is_dir()
