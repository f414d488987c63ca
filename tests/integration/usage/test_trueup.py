"""UsageTrueUpFunction (`functions/usage/trueup.py`) as Lambda runs it: a counter no event
attributed is billed, once, priced at the consumer's plan."""

from __future__ import annotations

import importlib.util
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from tollway import aws as tollway_aws
from tollway import cli
from tollway.quota.store import counter_pk
from tollway.usage.table import totals_key

HANDLER = Path(__file__).resolve().parents[3] / "functions" / "usage" / "trueup.py"


def load_true_up():
    spec = importlib.util.spec_from_file_location("usage_trueup_app", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scheduled_true_up_bills_a_counter_no_event_attributed(aws, infra, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in {**aws, "TOLLWAY_INFRA_DIR": str(infra)}.items():
        monkeypatch.setenv(name, value)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    dynamodb = tollway_aws.client("dynamodb", config=None)
    later = str(int(time.time()) + 86_400)
    # One event of zed's reached billing (1 unit, plan pro); the counter admitted 8 (daily plan: free).
    dynamodb.put_item(
        TableName=aws["TOLLWAY_QUOTA_TABLE"],
        Item={"pk": {"S": counter_pk(f"D{day}", 0, "zed")}, "used": {"N": "8"}, "expires_at": {"N": later}},
    )
    for key in (totals_key("zed", day, "items.get"), totals_key("zed", day[:7])):  # as the ledger writes
        dynamodb.put_item(
            TableName=aws["TOLLWAY_USAGE_TABLE"],
            Item={**key, "units": {"N": "1"}, "requests": {"N": "1"}, "plan": {"S": "pro"},
                  "amount_nanos": {"N": "500000"}, "currency": {"S": "USD"}},
        )  # fmt: skip
    app = load_true_up()
    assert app.handler({"source": "aws.events"}, None) == {"counters": 1, "written": 1, "unpriced": 0}
    assert app.handler({"source": "aws.events"}, None) == {"counters": 1, "written": 0, "unpriced": 0}
    capsys.readouterr()
    table = aws["TOLLWAY_USAGE_TABLE"]
    assert cli.main(["usage", "report", "--period", day, "--json", "--table", table]) == 0
    (zed,) = json.loads(capsys.readouterr().out)["consumers"]
    assert (zed["units"], zed["unattributed_units"], zed["amount_due"]) == (8, 7, "0.004")
