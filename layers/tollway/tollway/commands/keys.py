"""`tollway keys create|revoke|list`: issue API keys, show each once, store only its hash.

The keys table is named by `TOLLWAY_KEYS_TABLE` and the key secret by
`TOLLWAY_KEY_SECRET_ID` (both written to `.tollway/dev.env` by `tollway dev`, or taken from
the stack's outputs KeysTableName and KeySecretId); AWS endpoints come the boto3 way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from tollway import aws
from tollway.auth.keys import KeyMac, key_hash
from tollway.auth.store import REVOKED, KeyRecord, KeyStore, new_record
from tollway.config.load import load_infra

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_CONSUMER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3 scope-token


class UsageError(Exception):
    """A problem with what the user typed: printed, exit status 1."""


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="issue, revoke and list API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="issue a key; it is printed once and never stored")
    create.add_argument("--consumer", required=True, help="whose quota and usage the key spends")
    create.add_argument("--plan", required=True, help="a plan of infra/plans.yaml")
    create.add_argument("--scopes", default="", help="comma-separated, e.g. profile:read,users:read")
    create.add_argument("--expires-in", default=None, help="e.g. 3600s, 90m, 12h, 30d, 4w")
    create.add_argument("--infra", type=Path, default=Path("infra"))
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=run_create)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=run_revoke)
    lst = keys.add_parser("list", help="list keys (ids and metadata, never the keys)")
    lst.add_argument("--consumer", default=None)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run_list)


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(
            f"--expires-in {text!r}: give a positive number and a unit (s, m, h, d, w), e.g. 30d"
        )
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])


def parse_scopes(text: str) -> list[str]:
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise UsageError(f"--scopes: {scope!r} is not a valid scope")
    return scopes


def known_plans(infra: Path) -> list[str]:
    """The plans of `infra/plans.yaml`; a problem in a team's routes must not block key issuing."""
    loaded = load_infra(infra, Path.cwd())
    if loaded.plans is None:
        problems = "\n".join(str(p) for p in loaded.problems if "plans.yaml" in p.file)
        raise UsageError(f"cannot read plans from {infra}:\n{problems or 'plans.yaml is missing'}")
    return sorted(loaded.plans.plans)


def store() -> KeyStore:
    table = os.environ.get("TOLLWAY_KEYS_TABLE")
    if not table:
        raise UsageError(
            "TOLLWAY_KEYS_TABLE is not set: run `tollway dev` in this folder, "
            "or export the KeysTable name from the stack's outputs"
        )
    return KeyStore(aws.client("dynamodb", config=None), table)


def key_mac() -> KeyMac:
    """The MAC new keys are signed with: the deployment's secret, as the router reads it."""
    from tollway.auth.secret import load_key_mac
    from tollway.aws.errors import AwsError

    secret_id = os.environ.get("TOLLWAY_KEY_SECRET_ID")
    if not secret_id:
        raise UsageError(
            "TOLLWAY_KEY_SECRET_ID is not set: run `tollway dev` in this folder, "
            "or export KeySecretId from the stack's outputs"
        )
    try:
        return load_key_mac(secret_id, os.environ)
    except (AwsError, ValueError) as exc:
        raise UsageError(f"the key secret {secret_id!r} could not be read: {exc}") from exc


def run_create(args: argparse.Namespace) -> int:
    return _guarded(_create, args)


def run_revoke(args: argparse.Namespace) -> int:
    return _guarded(_revoke, args)


def run_list(args: argparse.Namespace) -> int:
    return _guarded(_list, args)


def _guarded(action, args: argparse.Namespace) -> int:
    try:
        return action(args)
    except UsageError as exc:
        print(f"tollway keys: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"tollway keys: the keys table could not be reached: {exc}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace) -> int:
    if not _CONSUMER.match(args.consumer):
        raise UsageError(f"--consumer {args.consumer!r}: use letters, digits and . _ : @ - (up to 128)")
    plans = known_plans(args.infra)
    if args.plan not in plans:
        raise UsageError(f"--plan {args.plan!r} is not a plan of {args.infra}; known: {', '.join(plans)}")
    scopes = parse_scopes(args.scopes)
    now = datetime.now(UTC)
    expires = now + parse_duration(args.expires_in) if args.expires_in else None
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


def _revoke(args: argparse.Namespace) -> int:
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


def _list(args: argparse.Namespace) -> int:
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
