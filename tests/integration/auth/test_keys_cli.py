"""`tollway keys create|revoke|list` against the keys table on the moto server."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import boto3
from tollway.auth.keys import key_hash
from tollway.auth.secret import load_key_mac


def issued_key_id(stack, key: str) -> str | None:
    """The key id if the key's MAC holds under the deployment's secret (the router's check)."""
    return load_key_mac(stack.environ["TOLLWAY_KEY_SECRET_ID"], {**os.environ, **stack.environ}).key_id(key)


def items(table: str) -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=table)["Items"]


def test_create_prints_the_key_once_and_stores_only_its_hash(stack, capsys):
    created = stack.create_key(capsys, "--scopes", "things:read,b", "--expires-in", "30d")
    assert set(created) == {"key", "key_id", "consumer", "plan", "scopes", "expires_at"}
    assert issued_key_id(stack, created["key"]) == created["key_id"]
    assert (created["consumer"], created["plan"], created["scopes"]) == ("acme", "free", ["b", "things:read"])
    expires = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(seconds=5)
    [item] = items(stack.environ["TOLLWAY_KEYS_TABLE"])
    assert item["key_hash"]["S"] == key_hash(created["key"])
    assert item["status"]["S"] == "active"
    assert created["key"] not in json.dumps(item)


def test_create_for_people_prints_the_key_alone_on_stdout(stack, capsys):
    status, out, err = stack.cli(
        "keys", "create", "--consumer", "acme", "--plan", "pro", "--infra", str(stack.infra), capsys=capsys
    )
    assert status == 0
    assert issued_key_id(stack, out.strip()) is not None
    assert "only time" in err and "never" in err


def test_create_without_the_key_secret_says_where_to_find_it(stack, capsys, monkeypatch):
    monkeypatch.delenv("TOLLWAY_KEY_SECRET_ID")
    base = ("keys", "create", "--consumer", "acme", "--plan", "free", "--infra", str(stack.infra))
    status, out, err = stack.cli(*base, capsys=capsys)
    assert status == 1 and "TOLLWAY_KEY_SECRET_ID is not set" in err and out == ""
    monkeypatch.setenv("TOLLWAY_KEY_SECRET_ID", "no-such-secret")
    status, out, err = stack.cli(*base, capsys=capsys)
    assert status == 1 and "could not be read" in err and out == ""
    assert items(stack.environ["TOLLWAY_KEYS_TABLE"]) == []


def test_create_rejects_unknown_plans_bad_durations_and_scopes(stack, capsys):
    base = ("keys", "create", "--consumer", "acme", "--infra", str(stack.infra))
    status, _, err = stack.cli(*base, "--plan", "gold", capsys=capsys)
    assert status == 1 and "'gold' is not a plan" in err and "known: free, pro" in err
    # A malformed value is a command line that cannot run: exit 2 (tollway/commands/common.py).
    status, _, err = stack.cli(*base, "--plan", "free", "--expires-in", "soon", capsys=capsys)
    assert status == 2 and "--expires-in" in err
    status, _, err = stack.cli(*base, "--plan", "free", "--scopes", 'a,"b', capsys=capsys)
    assert status == 2 and "not a valid scope" in err
    assert items(stack.environ["TOLLWAY_KEYS_TABLE"]) == []


def test_list_shows_ids_and_status_never_keys_or_hashes(stack, capsys):
    first = stack.create_key(capsys, consumer="acme")
    second = stack.create_key(capsys, consumer="globex", plan="pro")
    status, out, _ = stack.cli("keys", "revoke", first["key_id"], capsys=capsys)
    assert status == 0 and first["key_id"] in out
    status, out, _ = stack.cli("keys", "list", "--json", capsys=capsys)
    assert status == 0
    rows = {row["key_id"]: row for row in json.loads(out)["keys"]}
    assert rows[first["key_id"]]["status"] == "revoked"
    assert rows[second["key_id"]]["status"] == "active"
    status, text, _ = stack.cli("keys", "list", capsys=capsys)
    for secret in (first["key"], second["key"], key_hash(first["key"]), key_hash(second["key"])):
        assert secret not in out and secret not in text
    assert "KEY ID" in text and "revoked" in text
    status, out, _ = stack.cli("keys", "list", "--consumer", "globex", "--json", capsys=capsys)
    assert [row["key_id"] for row in json.loads(out)["keys"]] == [second["key_id"]]


def test_revoke_of_an_unknown_id_fails_and_revoking_twice_is_harmless(stack, capsys):
    status, _, err = stack.cli("keys", "revoke", "nosuchkey", capsys=capsys)
    assert status == 1 and "no key with id" in err
    created = stack.create_key(capsys)
    assert stack.cli("keys", "revoke", created["key_id"], capsys=capsys)[0] == 0
    status, out, _ = stack.cli("keys", "revoke", created["key_id"], capsys=capsys)
    assert status == 0 and "already revoked" in out


def test_without_a_table_name_the_cli_says_what_to_do(stack, capsys, monkeypatch):
    monkeypatch.delenv("TOLLWAY_KEYS_TABLE")
    status, _, err = stack.cli("keys", "list", capsys=capsys)
    assert status == 1 and "TOLLWAY_KEYS_TABLE" in err
