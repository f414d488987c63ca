"""`tollway usage reconcile` against the quota engineer's real counters (tollway.quota)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from tollway import aws as tollway_aws
from tollway import cli
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore
from tollway.transport.client import make_client
from tollway.usage.consumer import build_handler

from tests.lean import dynamo_caller

from .conftest import build_stack
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
    caller = dynamo_caller(make_client(), tollway_aws.client("dynamodb"))
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
        {"consumer": "acme", "quota_units": 11, "billed_units": 11, "difference": 0},
        {"consumer": "beta", "quota_units": 3, "billed_units": 3, "difference": 0},
    ]

    cleanup.pop()()  # the usage function stops: the next events stay queued, unbilled
    with httpx.Client(base_url=url) as http:
        assert http.get("/v1/items/9", headers={"x-api-key": "beta:free"}).status_code == 200
    assert cli.main(["usage", "reconcile", "--period", month]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"period {month}",
        "CONSUMER  QUOTA UNITS  BILLED UNITS  DIFFERENCE",
        "acme               11            11          +0",
        "beta                4             3          -1",
        "1 consumer(s) differ",
    ]
