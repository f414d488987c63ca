"""API key format, the TTL/LRU cache, and every way a key is refused before or after a lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tollway.auth.keys import KeyMac, KeyVerifier, key_hash, legacy_key_id, new_legacy_key
from tollway.auth.store import REVOKED, KeyRecord, new_record
from tollway.config.models import ApiKeys
from tollway.errors import ServiceUnavailable, Unauthorized
from tollway.lru import ExpiringLru

from .helpers import MAC, MemoryStore

new_key = MAC.new_key
issued_key_id = MAC.key_id


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def issue(plan: str = "free", expires: datetime | None = None) -> tuple[str, KeyRecord]:
    key, key_id = new_key()
    created = datetime.now(UTC)
    return key, new_record(key_hash(key), key_id, "acme", plan, ["b", "a"], created, expires)


def verifier(store, clock=None, **options) -> KeyVerifier:
    clock = clock or Clock()
    return KeyVerifier(
        store, ApiKeys(**options), mac=MAC, clock=lambda: datetime.now(UTC).timestamp(), monotonic=clock
    )


async def refused(verifier: KeyVerifier, key: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(key)
    assert 'error="invalid_token"' in caught.value.headers["www-authenticate"]
    return caught.value


# ---- format --------------------------------------------------------------------------


def test_new_keys_are_well_formed_unique_and_carry_their_id():
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key, key_id in keys:
        assert key.startswith(f"tw1_{key_id}_")
        assert issued_key_id(key) == key_id


@pytest.mark.parametrize("position", [4, 10, 20, 40, 61, 70])
def test_any_changed_character_breaks_the_mac(position):
    key, _ = new_key()
    changed = key[:position] + ("a" if key[position] != "a" else "b") + key[position + 1 :]
    assert issued_key_id(changed) is None


@pytest.mark.parametrize("text", ["", "tw1_", "demo-key", "TW1_" + "a" * 69, "tw1_abc_def", "x" * 73])
def test_strings_of_another_shape_are_not_issued_keys(text):
    assert issued_key_id(text) is None


def test_the_hash_is_hex_sha256_and_the_record_never_holds_the_key():
    key, record = issue()
    assert len(record.key_hash) == 64 and record.key_hash == key_hash(key)
    assert key not in str(record.to_item())
    assert KeyRecord.from_item(record.to_item()) == record
    assert record.scopes == ("a", "b")


# ---- cache ---------------------------------------------------------------------------


def test_entries_expire_after_their_ttl():
    clock = Clock()
    cache: ExpiringLru[int] = ExpiringLru(10, 5, clock)
    cache.put("a", 1)
    clock.now += 4.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None and len(cache) == 0


def test_a_full_cache_evicts_the_least_recently_used():
    cache: ExpiringLru[int] = ExpiringLru(2, 60, Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_a_zero_ttl_caches_nothing():
    cache: ExpiringLru[int] = ExpiringLru(2, 0, Clock())
    cache.put("a", 1)
    assert cache.get("a") is None


# ---- verification ----------------------------------------------------------------------


async def test_a_valid_key_is_read_once_then_served_from_the_cache_until_its_ttl():
    key, record = issue()
    store, clock = MemoryStore(record), Clock()
    check = verifier(store, clock, cache_ttl_s=30)
    for _ in range(50):
        assert await check.verify(key) == record
    assert store.reads == 1
    clock.now += 30
    await check.verify(key)
    assert store.reads == 2


async def test_malformed_keys_and_bad_checksums_never_reach_the_table():
    key, record = issue()
    store = MemoryStore(record)
    check = verifier(store)
    for bad in ["nope", key[:-1] + ("a" if key[-1] != "a" else "b"), key + "a", "tw_" + "a" * 59]:
        assert (await refused(check, bad)).detail == "malformed API key"
    assert store.reads == 0


async def test_unknown_keys_are_read_once_per_negative_ttl():
    store, clock = MemoryStore(), Clock()
    check = verifier(store, clock, negative_cache_ttl_s=10)
    key, _ = new_key()
    for _ in range(20):
        assert (await refused(check, key)).detail == "unknown API key"
    assert store.reads == 1
    clock.now += 10
    await refused(check, key)
    assert store.reads == 2


async def test_a_flood_of_unknown_keys_cannot_evict_known_ones_or_grow_memory():
    key, record = issue()
    store = MemoryStore(record)
    check = verifier(store, cache_size=100)
    await check.verify(key)
    for _ in range(1000):
        await refused(check, new_key()[0])
    assert len(check.unknown) == 100 and len(check.found) == 1
    reads = store.reads
    await check.verify(key)
    assert store.reads == reads


async def test_revoked_and_expired_keys_are_401_invalid_token():
    key, record = issue()
    revoked = KeyRecord.from_item({**record.to_item(), "status": {"S": REVOKED}})
    assert (await refused(verifier(MemoryStore(revoked)), key)).detail == "the API key has been revoked"
    old_key, old = issue(expires=datetime.now(UTC) - timedelta(seconds=1))
    assert (await refused(verifier(MemoryStore(old)), old_key)).detail == "the API key has expired"


async def test_a_cached_key_stops_working_the_moment_it_expires():
    key, record = issue(expires=datetime.now(UTC) + timedelta(days=1))
    now = [datetime.now(UTC).timestamp()]
    check = KeyVerifier(MemoryStore(record), ApiKeys(), mac=MAC, clock=lambda: now[0])
    await check.verify(key)
    now[0] += 86_401
    assert (await refused(check, key)).detail == "the API key has expired"


async def test_a_string_outside_the_issued_formats_is_never_looked_up():
    """The demo key's name included: `tollway dev` swaps it for a real key in front of the
    gateway (tollway/dev/front.py), the verifier knows no exception."""
    record = new_record(key_hash("demo-key"), "demo", "demo", "free", [], datetime.now(UTC), None)
    store = MemoryStore(record)
    assert (await refused(KeyVerifier(store, ApiKeys(), mac=MAC), "demo-key")).detail == "malformed API key"
    assert store.reads == 0


async def test_no_keys_table_refuses_keys_and_an_unreachable_one_is_503():
    key, _ = new_key()
    assert (await refused(verifier(None), key)).detail == "API keys are not accepted here"
    with pytest.raises(ServiceUnavailable):
        await verifier(MemoryStore(fail=True)).verify(key)


# ---- the MAC, the deadline and the migration -------------------------------------------


async def test_a_well_formed_key_under_another_secret_costs_no_read():
    """A forged key: the right shape, a MAC under a secret that is not the deployment's."""
    forger = KeyMac(b"not-the-deployment-secret-at-all!")
    store = MemoryStore()
    check = verifier(store)
    for _ in range(50):
        forged, _ = forger.new_key()
        assert (await refused(check, forged)).detail == "malformed API key"
    assert store.reads == 0


async def test_without_a_secret_no_signed_key_is_accepted_or_read():
    key, record = issue()
    store = MemoryStore(record)
    check = KeyVerifier(store, ApiKeys())
    assert (await refused(check, key)).detail == "malformed API key"
    assert store.reads == 0


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        KeyMac(b"short")


async def test_the_lookup_gets_the_callers_deadline():
    key, record = issue()
    store = MemoryStore(record)
    await verifier(store).verify(key, deadline=123.5)
    assert store.deadlines == [123.5]


async def test_keys_issued_before_the_mac_work_until_legacy_keys_is_turned_off():
    legacy, key_id = new_legacy_key()
    assert legacy_key_id(legacy) == key_id and issued_key_id(legacy) is None
    record = new_record(key_hash(legacy), key_id, "acme", "free", [], datetime.now(UTC), None)
    store = MemoryStore(record)
    assert await verifier(store).verify(legacy) == record
    assert store.reads == 1
    refusing = verifier(store, legacy_keys=False)
    assert (await refused(refusing, legacy)).detail == "malformed API key"
    assert store.reads == 1


async def test_a_cached_key_is_not_checked_again_and_a_forged_one_never_enters_the_cache():
    key, record = issue()
    check = verifier(MemoryStore(record))
    await check.verify(key)
    calls = []
    check.issued = lambda k: calls.append(k) or False  # any further MAC check would refuse
    assert await check.verify(key) == record and calls == []
    forged, _ = KeyMac(b"not-the-deployment-secret-at-all!").new_key()
    await refused(check, forged)
    assert calls == [forged] and len(check.found) == 1
