"""`tollway usage report|replay|reconcile|export|push-stripe|stripe-customer`: the usage and
billing records.

The tables and the queue come from the stack's outputs with `--stack NAME`, else from the
environment (`.tollway/dev.env` under `tollway dev`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tollway.commands.common import CommandError, add_stack_flags, need, use_target


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

    export = usage.add_parser("export", help="a period's usage per consumer, plan and route, for billing")
    export.add_argument("--period", required=True, type=period, help="YYYY-MM or YYYY-MM-DD (UTC)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="jsonl: CloudEvents 1.0")
    export.add_argument("--source", default=None, help="CloudEvents source (default: /tollway/usage/<table>)")
    export.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    add_stack_flags(export)
    export.set_defaults(func=run_export)

    push = usage.add_parser(
        "push-stripe", help="push each consumer's units of a month to Stripe meter events (docs/billing.md)"
    )
    push.add_argument("--period", required=True, type=_month, help="YYYY-MM (UTC)")
    push.add_argument("--consumer", default=None, help="only this consumer (default: every consumer)")
    push.add_argument("--infra", type=Path, default=Path("infra"), help="where plans.yaml names the meters")
    push.add_argument(
        "--resolve",
        action="append",
        default=[],
        type=_resolution,
        metavar="IDENTIFIER=sent|unsent",
        help="settle a pending push too old to send again, after checking Stripe (repeatable)",
    )
    push.add_argument("--json", action="store_true", help="print JSON instead of lines")
    push.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    add_stack_flags(push)
    push.set_defaults(func=run_push_stripe)

    customer = usage.add_parser("stripe-customer", help="show or set a consumer's Stripe customer id")
    customer.add_argument("--consumer", required=True, help="the consumer id")
    change = customer.add_mutually_exclusive_group()
    change.add_argument(
        "--set", dest="customer", default=None, type=_customer_id, metavar="CUSTOMER_ID", help="cus_..."
    )
    change.add_argument("--unset", action="store_true", help="forget the consumer's Stripe customer")
    customer.add_argument("--table", default=None, help="UsageTable name (default: $TOLLWAY_USAGE_TABLE)")
    add_stack_flags(customer)
    customer.set_defaults(func=run_stripe_customer)


def _month(text: str) -> str:
    from tollway.usage.table import month

    try:
        month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _customer_id(text: str) -> str:
    from tollway.usage.customers import CUSTOMER_ID

    if not CUSTOMER_ID.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Stripe customer id (cus_...)")
    return text


def _resolution(text: str) -> tuple[str, str]:
    ident, _, decision = text.rpartition("=")
    if not ident or decision not in ("sent", "unsent"):
        raise argparse.ArgumentTypeError(f"{text!r}: give IDENTIFIER=sent or IDENTIFIER=unsent")
    return ident, decision


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


def run_export(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from tollway import aws
    from tollway.usage.export import rows, write_csv, write_jsonl
    from tollway.usage.report import UsageReader

    use_target(args)
    table = args.table or need("TOLLWAY_USAGE_TABLE", "the usage table")
    found = rows(UsageReader(aws.client("dynamodb", config=None), table), args.period)
    if args.format == "csv":
        write_csv(found, sys.stdout)
    else:
        write_jsonl(found, sys.stdout, args.source or f"/tollway/usage/{table}", datetime.now(UTC))
    return 0


def run_stripe_customer(args: argparse.Namespace) -> int:
    from tollway import aws
    from tollway.usage.customers import StripeCustomers

    use_target(args)
    table = args.table or need("TOLLWAY_USAGE_TABLE", "the usage table")
    customers = StripeCustomers(aws.client("dynamodb", config=None), table)
    if args.unset:
        customers.remove(args.consumer)
    elif args.customer is not None:
        customers.set(args.consumer, args.customer)
    print(f"{args.consumer} -> {customers.get(args.consumer) or '(no Stripe customer)'}")
    return 0


def run_push_stripe(args: argparse.Namespace) -> int:
    import os

    from tollway import aws
    from tollway.config.load import load_infra
    from tollway.usage.push import StripePush
    from tollway.usage.stripe_meter import StripeMeterEvents, api_key

    use_target(args)
    table = args.table or need("TOLLWAY_USAGE_TABLE", "the usage table")
    loaded = load_infra(args.infra, Path.cwd())
    if loaded.plans is None or any("plans.yaml" in p.file for p in loaded.problems):
        problems = "; ".join(str(p) for p in loaded.problems if "plans.yaml" in p.file)
        raise CommandError(f"cannot read the plans of {args.infra}: {problems or 'plans.yaml is missing'}")
    try:
        sender = StripeMeterEvents(api_key(os.environ), api_base=os.environ.get("TOLLWAY_STRIPE_API_BASE"))
    except (LookupError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    push = StripePush(aws.client("dynamodb", config=None), table, loaded.plans.plans, sender)
    # The usage table's errors (no credentials, unreachable) become one line in tollway.cli.
    result = push.run(args.period, [args.consumer] if args.consumer else None, dict(args.resolve))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for p in result.pushed:
            print(f"{p.how}: {p.consumer} on {p.plan}, {p.value} units ({p.identifier})")
        print(f"{args.period}: {len(result.pushed)} push(es), {len(result.problems)} problem(s)")
    for problem in result.problems:
        print(f"tollway usage push-stripe: {problem}", file=sys.stderr)
    return 1 if result.problems else 0
