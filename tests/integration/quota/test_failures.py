"""DynamoDB throttles, fails or is gone: each route fails open or closed, never a 500."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber
from tollway.config.models import Plan
from tollway.dev.serve import free_port
from tollway.errors import ServiceUnavailable
from tollway.quota.admission import QuotaAdmission
from tollway.quota.store import QuotaStore

from .conftest import CLIENT_CONFIG, Clock, Dynamo

PLANS = {
    "free": Plan.model_validate(
        {"rate": {"limit": 5, "per": "second"}, "quota": {"limit": 100, "per": "day"}}
    )
}
NOW = 1_795_000_000.5


class Faulty(BaseHTTPRequestHandler):
    """Answers every DynamoDB call with the error the server was started with."""

    status = 500
    code = "InternalServerError"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{self.code}", "message": "injected"})
        self.send_response(self.status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[(500, "InternalServerError"), (400, "ThrottlingException")])
def faulty_url(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (Faulty,), {"status": request.param[0], "code": request.param[1]})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def client_at(url: str):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", config=CLIENT_CONFIG)


def emitted(capsys: pytest.CaptureFixture[str], name: str) -> int:
    """How many EMF records for metric `name` were written to stdout (CloudWatch Logs on Lambda)."""
    count = 0
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            names = [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            count += name in names
    return count


async def test_closed_route_answers_503_with_a_metric_and_a_log_line(
    faulty_url, consumer, exchange, caplog, capsys
) -> None:
    quota = QuotaAdmission(QuotaStore(client_at(faulty_url), "QuotaTable"), PLANS, now=Clock(NOW))
    ex = exchange(consumer, "free", quota_failure="closed")
    with pytest.raises(ServiceUnavailable) as unavailable:
        await quota.admit(ex)
    assert unavailable.value.status == 503
    assert unavailable.value.headers["retry-after"] == "1"
    assert unavailable.value.headers["ratelimit-policy"] == '"rate";q=5;w=1, "quota";q=100;w=86400'
    assert not ex.admitted
    assert emitted(capsys, "QuotaStoreFailures") == 1
    [record] = [r for r in caplog.records if r.getMessage() == "quota store unavailable"]
    assert record.levelname == "WARNING" and record.quota_failure == "closed" and record.reason


async def test_open_route_admits_without_counting(faulty_url, consumer, exchange, capsys) -> None:
    quota = QuotaAdmission(QuotaStore(client_at(faulty_url), "QuotaTable"), PLANS, now=Clock(NOW))
    ex = exchange(consumer, "free", cost=2, quota_failure="open")
    await quota.admit(ex)
    assert ex.admitted and ex.cost_units == 2
    assert dict(ex.extra_headers) == {"ratelimit-policy": '"rate";q=5;w=1, "quota";q=100;w=86400'}
    assert emitted(capsys, "QuotaFailedOpen") == 1


async def test_unreachable_store_fails_closed(consumer, exchange) -> None:
    quota = QuotaAdmission(
        QuotaStore(client_at(f"http://127.0.0.1:{free_port()}"), "QuotaTable"), PLANS, now=Clock(NOW)
    )
    with pytest.raises(ServiceUnavailable):
        await quota.admit(exchange(consumer, "free"))


async def test_throttled_real_client_fails_per_route(moto_dynamo: Dynamo, consumer, exchange, capsys) -> None:
    client = moto_dynamo.client()
    quota = QuotaAdmission(QuotaStore(client, moto_dynamo.table), PLANS, now=Clock(NOW))
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error(
                "update_item", "ProvisionedThroughputExceededException", http_status_code=400
            )
        with pytest.raises(ServiceUnavailable):
            await quota.admit(exchange(consumer, "free", quota_failure="closed"))
        opened = exchange(consumer, "free", quota_failure="open")
        await quota.admit(opened)
        assert opened.admitted
    # Once DynamoDB answers again, counting resumes from zero: nothing was spent meanwhile.
    ex = exchange(consumer, "free")
    await quota.admit(ex)
    assert '"quota";r=99;' in dict(ex.extra_headers)["ratelimit"]
    assert emitted(capsys, "QuotaStoreFailures") == 2
