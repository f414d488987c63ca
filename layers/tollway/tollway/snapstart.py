"""Lambda SnapStart: what a container restored from a snapshot must not keep from the init
that made the snapshot.

With `SnapStart: {ApplyOn: PublishedVersions}` (template.yaml), Lambda runs the init
(import, route table, `build_app`) once per published version, snapshots the memory, and
starts later containers from that snapshot: many containers then share one init's state.
`Renewal` is built once by `build_app` with the container's parts; the router's Lambda
adapter (tollway.functions.router) registers it with
`snapshot_restore_py.register_after_restore`, AWS's documented hook registry, which the
Python runtime calls after each restore. It renews:

- randomness: `random` is reseeded (retry jitter, balancer rotation, quota shard choice
  would otherwise repeat across restored containers); `secrets` and `uuid` read the OS
  and need nothing;
- credentials: a new boto3 session (credential chain; SnapStart functions get container
  credentials, not the snapshot's) for the DynamoDB caller of key lookups and quotas and
  for the usage sender;
- the AWS signing clock's correction (tollway/aws/clock.py): it described the clock of the
  host that made the snapshot, not this one's; a skew here is corrected on its own first
  refusal;
- connections: the usage sender's keep-alive connection is closed; the backends' and
  DynamoDB's aiohttp pool is created on the first request, so a snapshot holds none of
  its connections;
- the usage emitter's producer id: usage messages are numbered per producer, and the usage
  function records a number once, so restored containers must not number under one id;
- the JWKS of every issuer, fetched again on the next token;
- discovery: every `ssm:` / `cloudmap:` reference is resolved again.

Not renewed: the API key secret (tollway/auth/secret.py), read once by the init. Every issued
key's MAC is under that one value, so it cannot change while the keys it signed are valid;
reading it again would cost each restore a Secrets Manager round trip for the same bytes.

A step that fails is logged and the others still run: each part also recovers on its own
(credentials refresh, a failed lookup is retried), so a restore is never refused for it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tollway.observability import logger


class Renewal:
    def __init__(
        self,
        *,
        keys: Any = None,  # KeyVerifier
        tokens: Any = None,  # JwtVerifier or NoIssuers
        quota_caller: Any = None,  # DynamoCaller
        sqs: Any = None,  # LeanSqs
        usage: Any = None,  # UsageEmitter
        directory: Any = None,  # Directory
        session: Callable[[], Any] | None = None,  # a new boto3 session
        clock: Any = None,  # AwsClock
    ) -> None:
        self.keys = keys
        self.tokens = tokens
        self.quota_caller = quota_caller
        self.sqs = sqs
        self.usage = usage
        self.directory = directory
        self.session = session
        self.clock = clock

    def __call__(self) -> None:
        for step in (
            self.reseed,
            self.credentials,
            self.signing_clock,
            self.connections,
            self.producer,
            self.jwks,
            self.discovery,
        ):
            try:
                step()
            except Exception:
                logger.exception("SnapStart renewal step failed", extra={"step": step.__name__})

    def reseed(self) -> None:
        random.seed()

    def _signers(self) -> list[Any]:
        """Every lean AWS caller that signs with the container's credentials, each once."""
        lookup_caller = getattr(getattr(self.keys, "store", None), "caller", None)
        holders = [h for h in (self.quota_caller, lookup_caller, self.sqs) if h is not None]
        return list({id(h): h for h in holders}.values())

    def credentials(self) -> None:
        signers = self._signers()
        if self.session is None or not signers:
            return
        fresh = self.session().get_credentials()
        for holder in signers:
            holder.credentials = fresh

    def signing_clock(self) -> None:
        if self.clock is not None:
            self.clock.offset = 0.0

    def connections(self) -> None:
        if self.sqs is not None:
            self.sqs.close()

    def producer(self) -> None:
        renew = getattr(self.usage, "renew_producer", None)
        if renew is not None:
            renew()

    def jwks(self) -> None:
        for verifier in getattr(self.tokens, "issuers", {}).values():
            if verifier.jwks is not None:
                verifier.jwks.forget()

    def discovery(self) -> None:
        if self.directory is not None:
            self.directory.resolve_all()

