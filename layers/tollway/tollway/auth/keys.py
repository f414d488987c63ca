"""API keys: their format, and checking one against the keys table through two caches.

An issued key reads `tw1_<key id>_<secret><mac>`: a 12-character public id, 200 random
bits, and 16 characters (80 bits) of an HMAC-SHA256 over the rest under the deployment's
key secret (`KeyMac`), all in lower-case base32. Only the gateway and `tollway keys create`
hold the secret, so a key the gateway did not issue, however well-formed, is refused with
no table read. The table stores only the SHA-256 of the whole key (a fast hash is right
for 200 random bits).

Keys issued before the MAC (`tw_<key id>_<secret><check>`, a public 6-character checksum)
are still looked up while `auth.api_keys.legacy_keys` is on (the default), so they keep
working until they are rotated; anyone can mint that format, so each forged one costs a
read until the option is turned off (docs/auth.md, "Migration").

Lookups are awaited (`KeyLookup`, the quota's async DynamoDB caller) within the route's
deadline, and cached per container: a found key for `cache_ttl_s`, an unknown one for
`negative_cache_ttl_s`, each cache bounded to `cache_size` entries (least recently used
out first). Expiry is checked on every request; revocation takes effect within
`cache_ttl_s` (at most 60 s).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tollway.auth.challenge import invalid_token
from tollway.auth.store import ACTIVE, KeyLookup, KeyRecord
from tollway.aws.errors import AwsError
from tollway.errors import ServiceUnavailable
from tollway.lru import ExpiringLru

if TYPE_CHECKING:
    from tollway.table.auth import ApiKeys

PREFIX = "tw1_"
MAC_CHARS = 16
_SIGNED = re.compile(r"^tw1_([a-z2-7]{12})_[a-z2-7]{40}([a-z2-7]{16})$")
_LEGACY = re.compile(r"^tw_([a-z2-7]{12})_[a-z2-7]{40}([a-z2-7]{6})$")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _checksum(body: str) -> str:
    return _b32(hashlib.sha256(body.encode("ascii")).digest())[:6]


class KeyMac:
    """The MAC of issued keys under one deployment's key secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the API key secret must be at least 16 bytes")
        self._secret = secret

    def sign(self, body: str) -> str:
        return _b32(hmac.digest(self._secret, body.encode("ascii"), "sha256"))[:MAC_CHARS]

    def new_key(self) -> tuple[str, str]:
        """A fresh key and its public id."""
        key_id = new_key_id()
        body = f"{PREFIX}{key_id}_{_b32(secrets.token_bytes(25))}"
        return body + self.sign(body), key_id

    def key_id(self, key: str) -> str | None:
        """The key id of a well-formed key whose MAC holds, else None."""
        m = _SIGNED.match(key)
        if m is None or not hmac.compare_digest(self.sign(key[:-MAC_CHARS]), m.group(2)):
            return None
        return m.group(1)


def new_key_id() -> str:
    return _b32(secrets.token_bytes(8))[:12]


def legacy_key_id(key: str) -> str | None:
    """The key id of a well-formed key of the checksummed format issued before the MAC."""
    m = _LEGACY.match(key)
    if m is None or _checksum(key[:-6]) != m.group(2):
        return None
    return m.group(1)


def new_legacy_key() -> tuple[str, str]:
    """A key of the format issued before the MAC: for migration tests only."""
    key_id = new_key_id()
    body = f"tw_{key_id}_{_b32(secrets.token_bytes(25))}"
    return body + _checksum(body), key_id


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyVerifier:
    """Turns a presented key into its active record, or raises a 401.

    Only a key whose MAC holds (or, with `legacy_keys`, whose old checksum holds) reaches
    the caches and the table: no string of another shape is ever looked up. Without a `mac`
    (no key secret is configured) no signed key is accepted.
    """

    def __init__(
        self,
        store: KeyLookup | None,
        options: ApiKeys,
        *,
        mac: KeyMac | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.mac = mac
        self.legacy = options.legacy_keys
        self.clock = clock
        self.found: ExpiringLru[KeyRecord] = ExpiringLru(options.cache_size, options.cache_ttl_s, monotonic)
        # A separate map: a flood of unknown keys cannot evict the keys of real consumers.
        self.unknown: ExpiringLru[bool] = ExpiringLru(
            options.cache_size, options.negative_cache_ttl_s, monotonic
        )

    def issued(self, key: str) -> bool:
        """Whether `key` may be one the gateway issued: no table read for any other string."""
        if key.startswith(PREFIX):
            return self.mac is not None and self.mac.key_id(key) is not None
        return self.legacy and legacy_key_id(key) is not None

    async def verify(self, key: str, *, deadline: float | None = None) -> KeyRecord:
        digest = key_hash(key)
        # A cached record proves its key passed `issued` when it was read: a warm key skips
        # the MAC (an HMAC and a pure-Python base32 per request).
        record = self.found.get(digest)
        if record is None:
            if not self.issued(key):
                raise invalid_token("malformed API key")
            record = await self._lookup(digest, deadline)
        if record.status != ACTIVE:
            raise invalid_token("the API key has been revoked")
        if record.expired(self.clock()):
            raise invalid_token("the API key has expired")
        return record

    async def _lookup(self, digest: str, deadline: float | None) -> KeyRecord:
        if self.unknown.get(digest):
            raise invalid_token("unknown API key")
        if self.store is None:
            raise invalid_token("API keys are not accepted here")
        try:
            record = await self.store.get(digest, deadline=deadline)
        except AwsError as exc:
            raise ServiceUnavailable(
                "the key store is unavailable; try again shortly", headers={"retry-after": "1"}
            ) from exc
        if record is None:
            self.unknown.put(digest, True)
            raise invalid_token("unknown API key")
        self.found.put(digest, record)
        return record
