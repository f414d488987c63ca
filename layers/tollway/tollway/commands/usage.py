"""`tollway usage report|replay|reconcile|export|push-stripe|stripe-customer`."""

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

    export = usage.add_parser("export", help="a period's usage per consumer, plan and route, for billing")
    export.add_argument("--period", required=True, help="YYYY-MM or YYYY-MM-DD (UTC)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="jsonl: CloudEvents 1.0")
    export.add_argument("--source", default=None, help="CloudEvents source (default: /tollway/usage/<table>)")
    export.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    export.set_defaults(func=run_export)

    push = usage.add_parser(
        "push-stripe", help="push each consumer's units of a month to Stripe meter events (docs/billing.md)"
    )
    push.add_argument("--period", required=True, help="YYYY-MM (UTC)")
    push.add_argument("--consumer", default=None, help="only this consumer")
    push.add_argument("--infra", type=Path, default=Path("infra"), help="where plans.yaml names the meters")
    push.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="IDENTIFIER=sent|unsent",
        help="settle a pending push too old to send again, after checking Stripe (repeatable)",
    )
    push.add_argument("--json", action="store_true")
    push.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    push.set_defaults(func=run_push_stripe)

    customer = usage.add_parser("stripe-customer", help="show or set a consumer's Stripe customer id")
    customer.add_argument("--consumer", required=True)
    change = customer.add_mutually_exclusive_group()
    change.add_argument("--set", dest="customer", default=None, metavar="CUSTOMER_ID", help="cus_...")
    change.add_argument("--unset", action="store_true")
    customer.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    customer.set_defaults(func=run_stripe_customer)


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


def run_export(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from tollway import aws
    from tollway.usage.export import rows, write_csv, write_jsonl
    from tollway.usage.report import UsageReader
    from tollway.usage.table import period_sk

    try:
        period_sk(args.period)
    except ValueError as exc:
        print(f"tollway usage export: {exc}", file=sys.stderr)
        return 2
    table = _need(args.table or os.environ.get("TOLLWAY_USAGE_TABLE"), "TOLLWAY_USAGE_TABLE")
    found = rows(UsageReader(aws.client("dynamodb", config=None), table), args.period)
    if args.format == "csv":
        write_csv(found, sys.stdout)
    else:
        write_jsonl(found, sys.stdout, args.source or f"/tollway/usage/{table}", datetime.now(UTC))
    return 0


def run_stripe_customer(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.customers import CUSTOMER_ID, StripeCustomers

    if args.customer is not None and not CUSTOMER_ID.match(args.customer):
        print(f"tollway usage stripe-customer: --set {args.customer!r} is not a Stripe customer id (cus_...)",
              file=sys.stderr)  # fmt: skip
        return 2
    table = _need(args.table or os.environ.get("TOLLWAY_USAGE_TABLE"), "TOLLWAY_USAGE_TABLE")
    customers = StripeCustomers(aws.client("dynamodb", config=None), table)
    if args.unset:
        customers.remove(args.consumer)
    elif args.customer is not None:
        customers.set(args.consumer, args.customer)
    print(f"{args.consumer} -> {customers.get(args.consumer) or '(no Stripe customer)'}")
    return 0


def run_push_stripe(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from tollway import aws
    from tollway.config.load import load_infra
    from tollway.usage.push import StripePush
    from tollway.usage.stripe_meter import StripeMeterEvents, api_key
    from tollway.usage.table import month

    def fail(message: str, code: int = 1) -> int:
        print(f"tollway usage push-stripe: {message}", file=sys.stderr)
        return code

    try:
        month(args.period)
        resolve = dict(_resolution(r) for r in args.resolve)
    except ValueError as exc:
        return fail(str(exc), 2)
    table = _need(args.table or os.environ.get("TOLLWAY_USAGE_TABLE"), "TOLLWAY_USAGE_TABLE")
    loaded = load_infra(args.infra, Path.cwd())
    if loaded.plans is None or any("plans.yaml" in p.file for p in loaded.problems):
        problems = "; ".join(str(p) for p in loaded.problems if "plans.yaml" in p.file)
        return fail(f"cannot read the plans of {args.infra}: {problems or 'plans.yaml is missing'}")
    try:
        sender = StripeMeterEvents(api_key(os.environ), api_base=os.environ.get("TOLLWAY_STRIPE_API_BASE"))
    except (LookupError, ValueError) as exc:
        return fail(str(exc))
    push = StripePush(aws.client("dynamodb", config=None), table, loaded.plans.plans, sender)
    try:
        result = push.run(args.period, [args.consumer] if args.consumer else None, resolve)
    except (BotoCoreError, ClientError) as exc:
        return fail(f"the usage table could not be read or written: {' '.join(str(exc).split())}")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for p in result.pushed:
            print(f"{p.how}: {p.consumer} on {p.plan}, {p.value} units ({p.identifier})")
        print(f"{args.period}: {len(result.pushed)} push(es), {len(result.problems)} problem(s)")
    for problem in result.problems:
        print(f"tollway usage push-stripe: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def _resolution(text: str) -> tuple[str, str]:
    ident, _, decision = text.rpartition("=")
    if not ident or decision not in ("sent", "unsent"):
        raise ValueError(f"--resolve {text!r}: give IDENTIFIER=sent or IDENTIFIER=unsent")
    return ident, decision
