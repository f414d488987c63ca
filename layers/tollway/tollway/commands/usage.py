"""`tollway usage report|replay|reconcile`: the usage and billing records.

The tables and the queue come from the stack's outputs with `--stack NAME`, else from the
environment (`.tollway/dev.env` under `tollway dev`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tollway.commands.common import add_stack_flags, need, use_target


def period(text: str) -> str:
    from tollway.usage.table import period_sk

    try:
        period_sk(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(sub: argparse._SubParsersAction) -> None:
    usage = sub.add_parser("usage", help="usage and billing records").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    report = usage.add_parser("report", help="usage and amount due per consumer for a period")
    report.add_argument("--consumer", default=None, help="one consumer (default: every consumer)")
    report.add_argument("--period", required=True, type=period, help="YYYY-MM or YYYY-MM-DD (UTC)")
    report.add_argument("--json", action="store_true", help="print JSON (SPEC §3) instead of a table")
    report.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    add_stack_flags(report)
    report.set_defaults(func=run_report)

    replay = usage.add_parser("replay", help="re-send usage events written to a log as unsent")
    replay.add_argument("file", type=Path, help="log file ('-' for standard input)")
    replay.add_argument("--queue-url", default=None, help="default: $TOLLWAY_USAGE_QUEUE_URL")
    add_stack_flags(replay)
    replay.set_defaults(func=run_replay)

    reconcile = usage.add_parser(
        "reconcile", help="compare quota counters with billed units; exit 1 on any difference"
    )
    reconcile.add_argument("--period", required=True, type=period, help="YYYY-MM or YYYY-MM-DD (UTC)")
    reconcile.add_argument("--consumer", default=None, help="one consumer (default: every consumer)")
    reconcile.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_stack_flags(reconcile)
    reconcile.set_defaults(func=run_reconcile)


def run_report(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.report import UsageReader, render_table

    use_target(args)
    table = args.table or need("TOLLWAY_USAGE_TABLE", "the usage table")
    report = UsageReader(aws.client("dynamodb", config=None), table).report(args.period, args.consumer)
    print(json.dumps(report, indent=2) if args.json else render_table(report))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.replay import replay

    stream = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
    use_target(args)
    queue_url = args.queue_url or need("TOLLWAY_USAGE_QUEUE_URL", "the usage queue")
    with stream:
        result = replay(stream, aws.client("sqs", config=None), queue_url)
    print(
        f"replayed {result.sent} event(s) of {result.found} found"
        f" ({result.found - result.sent - len(result.failed)} repeated in the log,"
        f" {result.invalid} invalid, {len(result.failed)} refused by SQS)"
    )
    for event_id in result.failed:
        print(f"not sent: {event_id}", file=sys.stderr)
    return 1 if result.failed or result.invalid else 0


def run_reconcile(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.reconcile import reconcile, render

    use_target(args)
    usage_table = need("TOLLWAY_USAGE_TABLE", "the usage table")
    quota_table = need("TOLLWAY_QUOTA_TABLE", "the quota table")
    dynamodb = aws.client("dynamodb", config=None)
    rows = reconcile(dynamodb, usage_table, quota_table, args.period, args.consumer)
    if args.json:
        print(json.dumps({"period": args.period, "consumers": [r.to_json() for r in rows]}, indent=2))
    else:
        print(render(args.period, rows))
    return 1 if any(r.difference for r in rows) else 0
