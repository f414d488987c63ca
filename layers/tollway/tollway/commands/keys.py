"""`tollway keys create|revoke|list`: issue API keys, show each once, store only its hash.

The keys table is named by `TOLLWAY_KEYS_TABLE` and the key secret by
`TOLLWAY_KEY_SECRET_ID`: from the stack's outputs KeysTableName and KeySecretId with
`--stack NAME`, else the environment (`.tollway/dev.env` under `tollway dev`); AWS
endpoints come the boto3 way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tollway import aws
from tollway.auth.keys import KeyMac, key_hash
from tollway.auth.store import REVOKED, KeyRecord, new_record
from tollway.commands.common import CommandError, add_stack_flags, need, use_target
from tollway.config.load import load_infra
from tollway.tools.keystore import KeyStore

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_CONSUMER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3 scope-token


class UsageError(CommandError):
    """A problem with what the user asked for (an unknown plan or key): exit status 1."""


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="issue, revoke and list API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = keys.add_parser("create", help="issue a key; it is printed once and never stored")
    create.add_argument(
        "--consumer", required=True, type=consumer_id, help="whose quota and usage the key spends"
    )
    create.add_argument("--plan", required=True, help="a plan of infra/plans.yaml")
    create.add_argument(
        "--scopes", default=[], type=parse_scopes, help="comma-separated, e.g. profile:read,users:read"
    )
    create.add_argument(
        "--expires-in", type=parse_duration, help="e.g. 3600s, 90m, 12h, 30d, 4w (default: never)"
    )
    create.add_argument(
        "--infra", type=Path, default=Path("infra"), help="the infra folder whose plans --plan names"
    )
    create.add_argument("--json", action="store_true", help="print the key and its record as one JSON object")
    add_stack_flags(create)
    create.set_defaults(func=run_create)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key's id, as `keys create` and `keys list` show it")
    add_stack_flags(revoke)
    revoke.set_defaults(func=run_revoke)
    lst = keys.add_parser("list", help="list keys (ids and metadata, never the keys)")
    lst.add_argument("--consumer", default=None, help="only this consumer's keys")
    lst.add_argument("--json", action="store_true", help='print {"keys": [...]} instead of a table')
    add_stack_flags(lst)
    lst.set_defaults(func=run_list)


def consumer_id(text: str) -> str:
    if not _CONSUMER.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits and . _ : @ - (up to 128)")
    return text


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive number and a unit (s, m, h, d, w), e.g. 30d")
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])


def parse_scopes(text: str) -> list[str]:
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise argparse.ArgumentTypeError(f"{scope!r} is not a valid scope (RFC 6749 scope-token)")
    return scopes


def known_plans(infra: Path) -> list[str]:
    """The plans of `infra/plans.yaml`; a problem in a team's routes must not block key issuing."""
    loaded = load_infra(infra, Path.cwd())
    if loaded.plans is None:
        problems = [str(p) for p in loaded.problems if "plans.yaml" in p.file]
        more = f" (and {len(problems) - 1} more: tollway routes check)" if len(problems) > 1 else ""
        first = problems[0] if problems else "no plans.yaml"
        raise UsageError(f"cannot read plans (--infra {infra}): {first}{more}")
    return sorted(loaded.plans.plans)


def store() -> KeyStore:
    table = need("TOLLWAY_KEYS_TABLE", "the keys table")
    return KeyStore(aws.client("dynamodb", config=None), table)


def key_mac() -> KeyMac:
    """The MAC new keys are signed with: the deployment's secret, as the router reads it."""
    from tollway.auth.secret import load_key_mac
    from tollway.aws.errors import AwsError

    secret_id = need("TOLLWAY_KEY_SECRET_ID", "the key secret new keys are signed with")
    try:
        return load_key_mac(secret_id, os.environ)
    except (AwsError, ValueError) as exc:
        raise UsageError(f"the key secret {secret_id!r} could not be read: {exc}") from exc


def run_create(args: argparse.Namespace) -> int:
    plans = known_plans(args.infra)
    if args.plan not in plans:
        raise UsageError(f"--plan {args.plan!r} is not a plan of {args.infra}; known: {', '.join(plans)}")
    scopes = args.scopes
    now = datetime.now(UTC)
    expires = now + args.expires_in if args.expires_in else None
    use_target(args)
    key, key_id = key_mac().new_key()
    record = new_record(key_hash(key), key_id, args.consumer, args.plan, scopes, now, expires)
    store().put(record)
    if args.json:
        print(
            json.dumps(
                {
                    "key": key,
                    "key_id": key_id,
                    "consumer": record.consumer,
                    "plan": record.plan,
                    "scopes": list(record.scopes),
                    "expires_at": record.expires_at,
                }
            )
        )
        return 0
    print(key)
    print(
        f"key id {key_id} for consumer {record.consumer}, plan {record.plan}, "
        f"scopes {','.join(record.scopes) or '-'}, expires {record.expires_at or 'never'}",
        file=sys.stderr,
    )
    print("This is the only time the key is shown: store it now.", file=sys.stderr)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    use_target(args)
    keys = store()
    record = keys.by_key_id(args.key_id)
    if record is None:
        raise UsageError(f"no key with id {args.key_id!r}")
    if record.status == REVOKED:
        print(f"key {record.key_id} was already revoked")
        return 0
    keys.revoke(record, datetime.now(UTC))
    print(f"revoked key {record.key_id} of consumer {record.consumer}")
    return 0


def _row(record: KeyRecord, now: float) -> dict:
    return {
        "key_id": record.key_id,
        "consumer": record.consumer,
        "plan": record.plan,
        "scopes": list(record.scopes),
        "status": record.state(now),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    }


def run_list(args: argparse.Namespace) -> int:
    use_target(args)
    now = datetime.now(UTC).timestamp()
    rows = [_row(r, now) for r in store().list(args.consumer)]
    if args.json:
        print(json.dumps({"keys": rows}, indent=2))
        return 0
    header = ("KEY ID", "CONSUMER", "PLAN", "SCOPES", "STATUS", "CREATED", "EXPIRES")
    table = [header] + [
        (
            r["key_id"],
            r["consumer"],
            r["plan"],
            ",".join(r["scopes"]) or "-",
            r["status"],
            r["created_at"],
            r["expires_at"] or "never",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
