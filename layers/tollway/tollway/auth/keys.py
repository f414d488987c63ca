"""API keys: their format, and checking one against the keys table through two caches.

An issued key reads `tw_<key id>_<secret><check>`: a 12-character public id, 200 random
bits, and 6 characters of a SHA-256 checksum over the rest, all in lower-case base32.
The checksum lets the router refuse typos and random strings without a table read; the
table stores only the SHA-256 of the whole key (a fast hash is right for 200 random bits).

Lookups are cached per container: a found key for `cache_ttl_s`, an unknown one for
`negative_cache_ttl_s`, each cache bounded to `cache_size` entries (least recently used
out first). Expiry is checked on every request; revocation takes effect within
`cache_ttl_s` (at most 60 s).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from tollway.auth.challenge import invalid_token
from tollway.auth.store import ACTIVE, KeyRecord, KeyStore
from tollway.errors import ServiceUnavailable
from tollway.lru import ExpiringLru

if TYPE_CHECKING:
    from tollway.config.models import ApiKeys

PREFIX = "tw_"
_ISSUED = re.compile(r"^tw_([a-z2-7]{12})_[a-z2-7]{40}([a-z2-7]{6})$")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _checksum(body: str) -> str:
    return _b32(hashlib.sha256(body.encode("ascii")).digest())[:6]


def new_key_id() -> str:
    return _b32(secrets.token_bytes(8))[:12]


def new_key() -> tuple[str, str]:
    """A fresh key and its public id."""
    key_id = new_key_id()
    body = f"{PREFIX}{key_id}_{_b32(secrets.token_bytes(25))}"
    return body + _checksum(body), key_id


def issued_key_id(key: str) -> str | None:
    """The key id of a well-formed issued key whose checksum holds, else None."""
    m = _ISSUED.match(key)
    if m is None or _checksum(key[:-6]) != m.group(2):
        return None
    return m.group(1)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyVerifier:
    """Turns a presented key into its active record, or raises a 401.

    `extra_keys` are keys outside the issued format that may still be looked up (the
    dev server's demo key); any other string that is not an issued key never reaches
    the table.
    """

    def __init__(
        self,
        store: KeyStore | None,
        options: ApiKeys,
        *,
        extra_keys: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.extra_keys = frozenset(extra_keys)
        self.clock = clock
        self.found: ExpiringLru[KeyRecord] = ExpiringLru(options.cache_size, options.cache_ttl_s, monotonic)
        # A separate map: a flood of unknown keys cannot evict the keys of real consumers.
        self.unknown: ExpiringLru[bool] = ExpiringLru(
            options.cache_size, options.negative_cache_ttl_s, monotonic
        )

    def verify(self, key: str) -> KeyRecord:
        if issued_key_id(key) is None and key not in self.extra_keys:
            raise invalid_token("malformed API key")
        digest = key_hash(key)
        record = self.found.get(digest)
        if record is None:
            record = self._lookup(digest)
        if record.status != ACTIVE:
            raise invalid_token("the API key has been revoked")
        if record.expired(self.clock()):
            raise invalid_token("the API key has expired")
        return record

    def _lookup(self, digest: str) -> KeyRecord:
        if self.unknown.get(digest):
            raise invalid_token("unknown API key")
        if self.store is None:
            raise invalid_token("API keys are not accepted here")
        try:
            record = self.store.get(digest)
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("the key store is unavailable; try again shortly") from exc
        if record is None:
            self.unknown.put(digest, True)
            raise invalid_token("unknown API key")
        self.found.put(digest, record)
        return record
