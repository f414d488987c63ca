"""SnapStart after-restore hooks: a gateway built against the moto server, its renewal
registered with snapshot_restore_py and called the way the runtime calls it after a restore."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import boto3
import pytest
import snapshot_restore_py
from tollway.assemble import build_app
from tollway.functions.router import register_after_restore
from tollway.settings import Settings
from tollway.table.targets import Reference

from tests.bench.sqs_sink import sqs_sink
from tests.infra_files import write_infra

pytestmark = pytest.mark.anyio
PARAMETER = "/tollway/dev/users"
ROUTES = """\
- id: users
  path: /v1/users
  methods: [GET]
  public: true
  backends: [{name: b, service: users, path: /x}]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Jwks:
    """A JWKS endpoint that counts its fetches."""

    def __init__(self) -> None:
        self.fetches = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.fetches += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"keys": []}).encode()})


def restore() -> None:
    """What the Lambda runtime does after restoring a snapshot."""
    for func, args, kwargs in snapshot_restore_py.get_after_restore():
        func(*args, **kwargs)


async def test_a_restore_renews_credentials_connections_jwks_discovery_and_the_seed(
    tmp_path: Path, serve, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SendMessageBatch to a keep-alive stand-in (the moto server closes every connection).
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", serve(sqs_sink))
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=PARAMETER, Value="http://127.0.0.1:9001", Type="String")
    jwks = Jwks()
    auth = f"""\
auth:
  jwt:
    - {{issuer: "https://idp.test/", audience: gw, jwks_url: "{serve(jwks)}/jwks", default_plan: free}}
"""
    infra = write_infra(tmp_path, {"users": f"ssm:{PARAMETER}"}, ROUTES, auth=auth)
    settings = Settings(
        infra=infra,
        stage="dev",
        keys_table=aws["TOLLWAY_KEYS_TABLE"],
        quota_table=aws["TOLLWAY_QUOTA_TABLE"],
        usage_queue_url=aws["TOLLWAY_USAGE_QUEUE_URL"],
        environ=dict(os.environ),  # the emulator's endpoints
    )
    app = build_app(settings)
    renewal = app.renewal
    register_after_restore(renewal)
    assert any(func is renewal for func, _, _ in snapshot_restore_py.get_after_restore())

    # State the init (or a priming request) left behind, which every restored container shares.
    [issuer] = renewal.tokens.issuers.values()
    assert await issuer.jwks.key("k1", "RS256") is None and jwks.fetches == 1
    sqs = renewal.sqs
    sqs.send_message_batch(QueueUrl=settings.usage_queue_url, Entries=[{"Id": "1", "MessageBody": "{}"}])
    assert sqs._connection is not None
    credentials = (renewal.quota_caller.credentials, sqs.credentials)
    # Key lookups sign with the quota's DynamoDB caller: one renewal covers both.
    assert renewal.keys.store.caller is renewal.quota_caller
    users = Reference("ssm", PARAMETER)
    assert renewal.directory.instances(users) == ("http://127.0.0.1:9001",)
    ssm.put_parameter(Name=PARAMETER, Value="http://127.0.0.1:9002", Type="String", Overwrite=True)
    random.seed(7)
    after_init = random.random()
    # The snapshot's host had a skewed clock: the callers' shared correction is its, not ours.
    clock = renewal.clock
    assert renewal.quota_caller.clock is clock and sqs.clock is clock
    clock.offset = 600.0
    emitter = app.gateway.usage
    emitter.flush()  # say a priming request was metered during the init: the id exists
    emitter.producer = emitter.producer or "made-during-init"

    random.seed(7)
    restore()

    assert random.random() != after_init  # reseeded: restored containers do not share a sequence
    assert clock.offset == 0.0 and renewal.quota_caller.clock is clock
    assert renewal.quota_caller.credentials is not credentials[0]
    assert sqs.credentials is not credentials[1]
    assert renewal.quota_caller.credentials.get_frozen_credentials().access_key
    assert sqs._connection is None  # the next batch opens its own connection
    assert renewal.directory.instances(users) == ("http://127.0.0.1:9002",)
    assert emitter.producer is None  # made anew at this container's first flush
    assert await issuer.jwks.key("k1", "RS256") is None and jwks.fetches == 2  # fetched anew
    # The renewed parts still work: the usage sender reaches the queue on a new connection.
    sqs.send_message_batch(QueueUrl=settings.usage_queue_url, Entries=[{"Id": "2", "MessageBody": "{}"}])
    assert sqs._connection is not None
