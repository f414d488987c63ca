"""API keys, `Authorization` values and cookies never appear in logs or usage events.

A full run: a key issued by the CLI, a JWT, cookies, and requests that succeed and fail in
every way a caller can make them fail; then every log line the process wrote and every
usage event that reached the (moto) SQS queue are searched for the secrets.
"""

from __future__ import annotations

import io
import json
import logging
import re

import boto3
import httpx
from tollway.observability import logger

from tests.backends import loopback_backend
from tests.fuzz.stack import credentials, gateway_app, write_fuzz_infra


def no_extra_calls(creds) -> list:
    return []


def misplaced_key(creds) -> list:
    return [("GET", f"/v1/echo/x?api_key={creds.key}", {})]


async def test_no_secret_reaches_a_log_line_or_a_usage_event(
    aws, moto_url, serve, tmp_path, monkeypatch, capfd
):
    await run_and_scan(aws, moto_url, serve, tmp_path, monkeypatch, capfd, no_extra_calls)


async def test_a_key_misplaced_in_the_query_stays_out_of_the_logs(
    aws, moto_url, serve, tmp_path, monkeypatch, capfd
):
    await run_and_scan(aws, moto_url, serve, tmp_path, monkeypatch, capfd, misplaced_key)


async def run_and_scan(aws, moto_url, serve, tmp_path, monkeypatch, capfd, extra_calls) -> None:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    infra = write_fuzz_infra(tmp_path, serve(loopback_backend))
    creds = credentials(infra, capfd)  # the CLI prints each key once, before the capture below
    capfd.readouterr()
    # Powertools writes to the stdout it found at import time (pytest's), which capfd cannot
    # see: read the same records through a handler with the same JSON formatter, and
    # everyone else's (botocore, uvicorn, httpx) through the root logger.
    records = io.StringIO()
    tollway_handler = logging.StreamHandler(records)
    tollway_handler.setFormatter(logger.registered_formatter)
    root_handler = logging.StreamHandler(records)
    logging.getLogger("tollway").addHandler(tollway_handler)
    logging.getLogger().addHandler(root_handler)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)  # as deployed: INFO
    # This test's own client (httpx, not part of the router) logs each URL it requests at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = gateway_app(infra, aws)
    cookie = "session=cookie-secret-0123456789abcdef"
    basic = "Basic dXNlcjpiYXNpYy1zZWNyZXQ="
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://gw.test") as client:
        calls = [
            ("GET", "/v1/things/1", {"x-api-key": creds.key, "cookie": cookie}),
            ("GET", "/v1/things/1", {"authorization": f"Bearer {creds.token}", "cookie": cookie}),
            ("GET", "/v1/things/1", {"x-api-key": creds.scopeless_key}),  # 403
            ("GET", "/v1/things/1", {"x-api-key": creds.key[:-7] + "aaaaaaa"}),  # 401 malformed (MAC)
            ("GET", "/v1/things/1", {"authorization": f"Bearer {creds.token[:-4]}AAAA"}),  # 401 bad signature
            ("GET", "/v1/things/1", {"authorization": basic}),  # 401 scheme
            ("GET", "/v1/search", {"x-api-key": creds.key}),  # 401: JWT only
            ("POST", "/v1/orders", {"x-api-key": creds.key}),  # 400: invalid body
            ("GET", "/v1/nowhere", {"x-api-key": creds.key, "cookie": cookie}),  # 404
            ("DELETE", "/v1/things/1", {"authorization": f"Bearer {creds.token}"}),  # 405
            *extra_calls(creds),
        ]
        statuses = []
        for method, path, headers in calls:
            statuses.append((await client.request(method, path, headers=headers)).status_code)
    assert statuses[:10] == [200, 200, 403, 401, 401, 401, 401, 400, 404, 405], statuses
    app.gateway.usage.flush()
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    events, bodies = [], []
    while batch := sqs.receive_message(QueueUrl=aws["TOLLWAY_USAGE_QUEUE_URL"], MaxNumberOfMessages=10).get(
        "Messages"
    ):
        # One SQS message carries the events of a flush (tollway.usage.events.UsageMessage).
        events += [json.dumps(e) for m in batch for e in json.loads(m["Body"])["events"]]
        bodies += [m["Body"] for m in batch]
        sqs.delete_message_batch(
            QueueUrl=aws["TOLLWAY_USAGE_QUEUE_URL"],
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    logging.getLogger("tollway").removeHandler(tollway_handler)
    logging.getLogger().removeHandler(root_handler)
    logging.getLogger().setLevel(previous_level)
    out, err = capfd.readouterr()
    logs = out + err + records.getvalue()
    # Every request that reached a route was metered (the 404 and the 405 reached none) and logged.
    # Counted by request id: a record may reach more than one of the captures above.
    logged = set(re.findall(r'"message":"access"[^{}]*?"request_id":"([^"]+)"', logs))
    assert len(events) == len(statuses) - 2 and len(logged) == len(statuses)
    assert {json.loads(e)["consumer_id"] for e in events} >= {"fuzzer"}
    secrets = {
        "api key": creds.key,
        "key body": creds.key[4:-16],
        "scopeless key": creds.scopeless_key,
        "jwt": creds.token,
        "jwt signature": creds.token.rsplit(".", 1)[1],
        "cookie": "cookie-secret-0123456789abcdef",
        "basic credentials": "dXNlcjpiYXNpYy1zZWNyZXQ=",
    }
    for where, text in {"logs": logs, "usage events": "\n".join(bodies)}.items():
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} appears in the {where}"
