"""`tollway usage reconcile` against the quota engineer's real counters (tollway.quota)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import httpx
from tollway import aws as tollway_aws
from tollway import cli
from tollway.functions.usage import build_handler
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore
from tollway.transport.exchange import AiohttpExchanger

from tests.lean import dynamo_caller

from .conftest import build_stack, queue_depth, wait_for
from .test_pipeline import drain


def test_reconcile_matches_after_drain_and_shows_unbilled_units(
    aws, infra, backend_url, serve, cleanup, capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    from tollway.config.compile import compile_infra

    plans = compile_infra(infra, "dev").plans
    # The production caller; its client's pool is opened on the server's loop at first use.
    caller = dynamo_caller(AiohttpExchanger(), tollway_aws.client("dynamodb"))
    admission = QuotaAdmission(QuotaStore(caller, aws["TOLLWAY_QUOTA_TABLE"]), plans)
    stack = build_stack(aws, infra, backend_url, admission=admission)
    url = serve(stack.app)
    with httpx.Client(base_url=url) as http:
        for i in range(6):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "acme:pro"}).status_code == 200
        assert http.post("/v1/reports", headers={"x-api-key": "acme:pro"}, content=b"{}").status_code == 200
        for i in range(3):
            assert http.get(f"/v1/items/{i}", headers={"x-api-key": "beta:free"}).status_code == 200
    drain(stack, build_handler(stack.settings), cleanup)
    month = datetime.now(UTC).strftime("%Y-%m")
    capsys.readouterr()
    assert cli.main(["usage", "reconcile", "--period", month, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["consumers"]
    assert rows == [
        {"consumer": "acme", "quota_units": 11, "billed_units": 11, "difference": 0, "unattributed_units": 0},
        {"consumer": "beta", "quota_units": 3, "billed_units": 3, "difference": 0, "unattributed_units": 0},
    ]

    cleanup.pop()()  # the usage function stops: the next events stay queued, unbilled
    with httpx.Client(base_url=url) as http:
        assert http.get("/v1/items/9", headers={"x-api-key": "beta:free"}).status_code == 200
    assert cli.main(["usage", "reconcile", "--period", month]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"period {month}",
        "CONSUMER  QUOTA UNITS  BILLED UNITS  DIFFERENCE  UNATTRIBUTED",
        "acme               11            11          +0             0",
        "beta                4             3          -1             0",
        "1 consumer(s) differ",
    ]


def test_the_true_up_bills_what_the_counters_admitted_when_events_are_lost_and_never_twice(
    aws, infra, backend_url, serve, cleanup, capsys, monkeypatch, tmp_path
):
    """Events die with their router (the emitter's buffer dropped, as SIGKILL drops it): the
    quota counters still counted them; after the true-up the bill holds them, and events that
    arrive late are attributed without being billed again."""
    monkeypatch.chdir(tmp_path)
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    from tollway.config.compile import compile_infra
    from tollway.settings import Settings
    from tollway.usage.trueup import build_true_up

    plans = compile_infra(infra, "dev").plans
    caller = dynamo_caller(AiohttpExchanger(), tollway_aws.client("dynamodb"))
    admission = QuotaAdmission(QuotaStore(caller, aws["TOLLWAY_QUOTA_TABLE"]), plans)
    stack = build_stack(aws, infra, backend_url, admission=admission, interval_s=3600)
    url = serve(stack.app)
    key = {"x-api-key": "acme:pro"}

    def get(n: int) -> None:
        with httpx.Client(base_url=url) as http:
            for i in range(n):
                assert http.get(f"/v1/items/{i}", headers=key).status_code == 200

    get(5)
    stack.emitter.flush()
    get(4)
    stack.emitter._new.clear()  # the router dies with these four in its buffer: no log line
    get(3)
    late = list(stack.emitter._new)  # these three are still on their way
    stack.emitter._new.clear()
    drain(stack, build_handler(stack.settings), cleanup)
    month = datetime.now(UTC).strftime("%Y-%m")

    def reconciled() -> tuple[int, dict]:
        capsys.readouterr()
        code = cli.main(["usage", "reconcile", "--period", month, "--json"])
        (row,) = json.loads(capsys.readouterr().out)["consumers"]
        return code, row

    assert reconciled() == (
        1,
        {"consumer": "acme", "quota_units": 12, "billed_units": 5, "difference": -7, "unattributed_units": 0},
    )
    tables = {"usage_table": aws["TOLLWAY_USAGE_TABLE"], "quota_table": aws["TOLLWAY_QUOTA_TABLE"]}
    settings = Settings(infra=infra, stage="dev", **tables)
    true_up = build_true_up(settings)
    assert true_up.run().written == 1
    assert reconciled() == (
        0,
        {"consumer": "acme", "quota_units": 12, "billed_units": 12, "difference": 0, "unattributed_units": 7},
    )
    report = stack_report(stack, capsys, month)
    assert (report["units"], report["unattributed_units"], report["amount_due"]) == (12, 7, "0.006")
    assert report["routes"] == {"items.get": {"requests": 5, "units": 5}}

    stack.emitter._new.extend(late)  # the late ones arrive: attributed, not billed again
    stack.emitter.flush()
    wait_for(lambda: queue_depth(stack.sqs, aws["TOLLWAY_USAGE_QUEUE_URL"]) == 0, what="late events recorded")
    report = stack_report(stack, capsys, month)
    assert (report["units"], report["unattributed_units"], report["amount_due"]) == (12, 4, "0.006")
    assert report["routes"] == {"items.get": {"requests": 8, "units": 8}}
    # The plans and the export add up to the bill: the unattributed units are the counter's plan's.
    assert report["plans"] == {"pro": {"requests": 8, "units": 12, "amount_due": "0.006"}}
    capsys.readouterr()
    table = stack.env["TOLLWAY_USAGE_TABLE"]
    assert cli.main(["usage", "export", "--table", table, "--period", month]) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["plan"], r["route"], r["requests"], r["units"]) for r in exported] == [
        ("pro", "items.get", "8", "8"),
        ("pro", "(unattributed)", "0", "4"),
    ]
    assert true_up.run().written == 0  # nothing moved: nothing written
    assert reconciled()[0] == 0


def stack_report(stack, capsys, period: str) -> dict:
    capsys.readouterr()
    table = stack.env["TOLLWAY_USAGE_TABLE"]
    argv = ["usage", "report", "--json", "--table", table, "--consumer", "acme", "--period", period]
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)
