"""`tollway usage report|replay|reconcile`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    usage = sub.add_parser("usage", help="usage and billing records").add_subparsers(
        dest="action", required=True
    )
    report = usage.add_parser("report", help="usage and amount due per consumer for a period")
    report.add_argument("--consumer", default=None)
    report.add_argument("--period", required=True, help="YYYY-MM or YYYY-MM-DD (UTC)")
    report.add_argument("--json", action="store_true")
    report.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    report.set_defaults(func=run_report)

    replay = usage.add_parser("replay", help="re-send usage events written to a log as unsent")
    replay.add_argument("file", type=Path, help="log file ('-' for standard input)")
    replay.add_argument("--queue-url", default=None, help="default: $TOLLWAY_USAGE_QUEUE_URL")
    replay.set_defaults(func=run_replay)

    reconcile = usage.add_parser("reconcile", help="compare quota counters with billed units")
    reconcile.add_argument("--period", required=True, help="YYYY-MM or YYYY-MM-DD (UTC)")
    reconcile.add_argument("--consumer", default=None)
    reconcile.add_argument("--json", action="store_true")
    reconcile.set_defaults(func=run_reconcile)


def _need(value: str | None, variable: str) -> str:
    if not value:
        raise SystemExit(f"tollway usage: {variable} is not set (run `tollway dev` here, or set it)")
    return value


def run_report(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.report import UsageReader, render_table
    from tollway.usage.table import period_sk

    try:
        period_sk(args.period)
    except ValueError as exc:
        print(f"tollway usage report: {exc}", file=sys.stderr)
        return 2
    table = _need(args.table or os.environ.get("TOLLWAY_USAGE_TABLE"), "TOLLWAY_USAGE_TABLE")
    report = UsageReader(aws.client("dynamodb", config=None), table).report(args.period, args.consumer)
    print(json.dumps(report, indent=2) if args.json else render_table(report))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.replay import replay

    queue_url = _need(args.queue_url or os.environ.get("TOLLWAY_USAGE_QUEUE_URL"), "TOLLWAY_USAGE_QUEUE_URL")
    stream = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
    with stream:
        result = replay(stream, aws.client("sqs", config=None), queue_url)
    repeated = result.found - result.sent - len(result.failed) - result.incomplete_events
    print(
        f"replayed {result.sent} event(s) of {result.found} found"
        f" ({repeated} repeated in the log,"
        f" {result.invalid} invalid, {len(result.failed)} refused by SQS)"
    )
    for event_id in result.failed:
        print(f"not sent: {event_id}", file=sys.stderr)
    for message in result.incomplete:
        print(f"not sent: message {message} is not whole in this log", file=sys.stderr)
    return 1 if result.failed or result.invalid or result.incomplete else 0


def run_reconcile(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.reconcile import reconcile, render

    usage_table = _need(os.environ.get("TOLLWAY_USAGE_TABLE"), "TOLLWAY_USAGE_TABLE")
    quota_table = _need(os.environ.get("TOLLWAY_QUOTA_TABLE"), "TOLLWAY_QUOTA_TABLE")
    try:
        rows = reconcile(
            aws.client("dynamodb", config=None), usage_table, quota_table, args.period, args.consumer
        )
    except ValueError as exc:
        print(f"tollway usage reconcile: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"period": args.period, "consumers": [r.to_json() for r in rows]}, indent=2))
    else:
        print(render(args.period, rows))
    return 1 if any(r.difference for r in rows) else 0
