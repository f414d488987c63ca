"""Rows C1-C3 of `make bench`: dollars per million requests at AWS list price, from what each
request was counted doing on the emulator.

The measure (`python -m tests.bench.worker cost ...`, a fresh process) runs a warm router
container in-process (`functions/router/app.py`, with the usage extension's work after each
invocation: settles, then the usage flush) and the usage function on the queue the way
Lambda's SQS event source feeds it (ReceiveMessage of 10 until a batch of `BatchSize`,
the handler, DeleteMessageBatch of the done ones). Every DynamoDB and SQS call goes through
`tests.bench.meter`, which counts units by AWS's billing rules; the functions' standard
output (their CloudWatch Logs) is counted in bytes and lines; each invocation is timed.

Per request, then:
  front door        HTTP API per request, or a Lambda function URL (no per-request charge)
  Lambda requests   the router's invocation + its share of a usage-function invocation
  Lambda GB-s       memory (template.yaml) x billed duration (measured here, rounded up to
                    1 ms, plus BACKEND_MS for the router: the backend answers instantly here)
  DynamoDB          write and read units, router and usage function
  SQS               requests (64 KB chunks): the flush, and the event source's receive/delete
  CloudWatch Logs   bytes written + 26 bytes per line (AWS's per-event metadata), and the
                    platform's START/END/REPORT lines (PLATFORM_LINES, not emitted here)

Baselines are the front doors alone (their price list): AWS REST API with usage plans and
API keys, HTTP API. Not per request, so not counted: the event source's empty long polls
while idle, and the usage true-up every 5 minutes (a scan of QuotaTable: cents a month).

"Before" (row C2-before) replays this run's usage messages through the usage writes of the
ledger before issue 19 (one 5-item transaction per event: `before_record`), into a table of
its own, and counts them the same way.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.procs import ROOT
from tests.bench.table import Row

# AWS list prices, us-east-1, arm64, on-demand, read 2026-12-07 (NOTES.md). USD.
PRICES_DATE = "2026-12-07"
PRICES = {
    "http_api_request": 1.00 / 1e6,  # HTTP API, first 300 M requests a month
    "rest_api_request": 3.50 / 1e6,  # REST API (usage plans and API keys), first 333 M
    "function_url_request": 0.0,  # a Lambda function URL has no per-request charge of its own
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,  # arm64
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand
    "dynamodb_read_unit": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "logs_ingested_gb": 0.50,  # CloudWatch Logs, standard class
}
BACKEND_MS = 10.0  # stated: the backend's answer time, which the router's invocation waits for
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs adds to each log event when it meters ingestion
# The platform's lines per invocation in the text log format (lengths of real-shaped lines).
PLATFORM_LINES = (
    "START RequestId: 8f5ee2e5-2a7c-4f0e-9a57-32d1e3c0b0a1 Version: 12\n",
    "END RequestId: 8f5ee2e5-2a7c-4f0e-9a57-32d1e3c0b0a1\n",
    "REPORT RequestId: 8f5ee2e5-2a7c-4f0e-9a57-32d1e3c0b0a1\tDuration: 12.34 ms\tBilled Duration: 13 ms"
    "\tMemory Size: 512 MB\tMax Memory Used: 98 MB\t\n",
)
REQUESTS = 500  # counted per route kind
TIMED = 100  # timed per route kind
CONSUMERS = 10  # keyed and metered requests spread over this many consumers' keys


# --- the measure (in the worker process) ---------------------------------------------------


@contextmanager
def stdout_bytes(out: dict[str, int]):
    """Count what the process writes to standard output (fd 1) meanwhile: bytes and lines."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            data = sink.read()
            out["bytes"] = out.get("bytes", 0) + len(data)
            out["lines"] = out.get("lines", 0) + data.count(b"\n")


def template_numbers() -> dict[str, Any]:
    from tollway.dev.template import read_template

    template = read_template(ROOT / "template.yaml")
    globals_ = template["Globals"]["Function"]
    memory = globals_.get("MemorySize", 128)
    router = template["Resources"]["RouterFunction"]["Properties"]
    usage = template["Resources"]["UsageFunction"]["Properties"]
    batch = usage["Events"]["UsageEvents"]["Properties"].get("BatchSize", 10)

    def platform_lines(properties: dict[str, Any]) -> bool:
        logging = properties.get("LoggingConfig") or globals_.get("LoggingConfig") or {}
        level = logging.get("SystemLogLevel", "INFO")
        return logging.get("LogFormat") != "JSON" or level in ("DEBUG", "INFO")

    return {
        "memory_mb": usage.get("MemorySize", memory),
        "router_memory_mb": router.get("MemorySize", memory),
        "batch_size": batch,
        "router_platform_lines": platform_lines(router),
        "usage_platform_lines": platform_lines(usage),
    }


def measure_cost(spec: dict[str, Any]) -> dict[str, Any]:
    import boto3
    from tollway.dev.serve import serve_in_thread
    from tollway.functions.router import after_response
    from tollway.functions.usage import build_handler
    from tollway.settings import Settings

    from tests.bench.invoke import CONTEXT, http_event, load_router
    from tests.bench.meter import Meter

    numbers = template_numbers()
    meter = Meter(spec["env"]["AWS_ENDPOINT_URL"])
    front = serve_in_thread(meter)
    env = {k: v for k, v in spec["env"].items() if k != "AWS_ENDPOINT_URL_SQS"}
    env["AWS_ENDPOINT_URL"] = front.url
    os.environ.pop("AWS_ENDPOINT_URL_SQS", None)
    os.environ.update(env)
    meter.phase = "setup"
    keys = _keys(env, CONSUMERS)
    router = load_router(env)
    after = after_response(router.app)
    before_logs: dict[str, int] = {}
    _also_log_before(router, before_logs)
    # Timed on a container of its own that talks to the emulator directly (no metering hop).
    timed = load_router({**env, "AWS_ENDPOINT_URL": spec["env"]["AWS_ENDPOINT_URL"]})
    timed_after = after_response(timed.app)
    os.environ["AWS_ENDPOINT_URL"] = front.url
    settings = Settings.from_environ(env, Path(env["TOLLWAY_INFRA_DIR"]))
    usage_handler = build_handler(settings)
    sqs = boto3.client("sqs", endpoint_url=front.url)
    before_table = _before_table(env)
    dynamodb = boto3.client("dynamodb", endpoint_url=front.url)
    queue = env["TOLLWAY_USAGE_QUEUE_URL"]
    body = b'{"messages":[{"role":"user","content":"hello"}],"max_tokens":20}'
    kinds = {
        "public": [http_event("/v1/ping")],
        "keyed": [http_event("/v1/keyed", {"x-api-key": k}) for k in keys],
        "metered": [
            {**http_event("/v1/metered", {"x-api-key": k, "content-type": "application/json"}, "POST"),
             "body": body.decode()}
            for k in keys
        ],
    }  # fmt: skip
    out: dict[str, Any] = {"template": numbers, "consumers": CONSUMERS, "backend_ms": BACKEND_MS}
    for kind, events in kinds.items():
        meter.phase = "warm"
        for event in events * 3:  # keys cached, connections open: warm containers
            for container, flush in ((router, after), (timed, timed_after)):
                container.handler(event, CONTEXT)
                flush.flush()
        _esm(sqs, queue, usage_handler, numbers["batch_size"], {}, [])
        meter.counting = False  # the usage function's batch timed without the meter's reads
        durations = [_invoke(timed, timed_after, events[i % len(events)], {}) for i in range(TIMED)]
        usage_ms: list[float] = []
        _esm(sqs, queue, usage_handler, numbers["batch_size"], {"ms": usage_ms}, [])
        meter.counting = True
        statuses: dict[int, int] = {}
        router_logs: dict[str, int] = {}
        before_logs.clear()
        meter.phase = f"router:{kind}"
        with stdout_bytes(router_logs):
            for i in range(REQUESTS):
                _invoke(router, after, events[i % len(events)], statuses)
        meter.phase = f"usage:{kind}"
        usage_logs: dict[str, int] = {}
        bodies: list[str] = []
        batches: list[float] = []
        with stdout_bytes(usage_logs):
            _esm(sqs, queue, usage_handler, numbers["batch_size"], {"ms": batches}, bodies)
        if kind == "keyed":
            meter.phase = f"before:{kind}"
            _before(dynamodb, before_table, bodies)
        out[kind] = {
            "requests": REQUESTS,
            "statuses": statuses,
            "router_ms": statistics.mean(durations),
            "router_ms_median": statistics.median(durations),
            "router_billed_ms": statistics.mean(math.ceil(d + BACKEND_MS) for d in durations),
            "usage_batches": len(batches),
            "usage_messages": len(bodies),
            # The timed pass's mean batch time, for this pass's batches.
            "usage_billed_ms": len(batches) * statistics.mean(math.ceil(ms) for ms in usage_ms),
            "usage_ms_per_batch": statistics.mean(usage_ms),
            "router_units": meter.phases(f"router:{kind}"),
            "usage_units": meter.phases(f"usage:{kind}"),
            "before_units": meter.phases(f"before:{kind}"),
            "router_logs": router_logs,
            "usage_logs": usage_logs,
            "before_router_logs": dict(before_logs),
        }
    front.stop()
    return out


def _also_log_before(router: Any, counted: dict[str, int]) -> None:
    """Count, beside each access line, the line written before issue 19 (every field, always)."""
    import logging

    from tollway.observability import _EMF_DIRECTIVE, logger

    gateway = router.app.gateway
    now = gateway.access_log

    def both(request: Any, response: Any, route_id: str | None, ms: float, consumer: str | None) -> None:
        now(request, response, route_id, ms, consumer)
        status = response.status
        extra = {
            "request_id": request.request_id, "method": request.method, "path": request.path,
            "route_id": route_id, "status": status, "latency_ms": round(ms, 3), "consumer_id": consumer,
            "client_ip": request.client_ip, "request_bytes": len(request.body),
            "response_bytes": response.size,
            "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": _EMF_DIRECTIVE},
            "route": route_id or "unmatched", "Requests": 1, "Errors4xx": int(400 <= status < 500),
            "Errors5xx": int(status >= 500), "QuotaRejected": int(status == 429), "Latency": round(ms, 3),
        }  # fmt: skip
        record = logging.getLogger("tollway").makeRecord(
            "tollway", logging.INFO, "observability.py", 56, "access", (), None, "access_log", extra
        )
        line = logger.registered_formatter.format(record)
        counted["bytes"] = counted.get("bytes", 0) + len(line.encode()) + 1
        counted["lines"] = counted.get("lines", 0) + 1

    gateway.access_log = both


def _invoke(router: Any, after: Any, event: dict[str, Any], statuses: dict[int, int]) -> float:
    """One invocation and the extension's work after it (billed duration); its ms."""
    from tests.bench.invoke import CONTEXT

    t0 = time.perf_counter()
    result = router.handler(event, CONTEXT)
    after.flush()
    statuses[result["statusCode"]] = statuses.get(result["statusCode"], 0) + 1
    return (time.perf_counter() - t0) * 1000


def _keys(env: dict[str, str], count: int) -> list[str]:
    """`count` consumers of plan `bench`, one key each (stored as `tollway keys create` does)."""
    from datetime import UTC, datetime

    import boto3
    from tollway.auth.keys import KeyMac, key_hash
    from tollway.auth.store import new_record
    from tollway.tools.keystore import KeyStore

    mac = KeyMac(env["BENCH_KEY_SECRET"].encode("utf-8"))
    store = KeyStore(boto3.client("dynamodb"), env["TOLLWAY_KEYS_TABLE"])
    keys = []
    for i in range(count):
        key, key_id = mac.new_key()
        store.put(new_record(key_hash(key), key_id, f"cost-{i}", "bench", [], datetime.now(UTC), None))
        keys.append(key)
    return keys


def _esm(
    sqs: Any, queue: str, handler: Any, batch_size: int, timing: dict[str, list[float]], bodies: list[str]
) -> None:
    """Drain the queue as Lambda's event source does: batches of up to `batch_size`."""
    from tollway.dev.sqs_poller import _context, lambda_record

    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    while True:
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                break
            messages += got["Messages"]
        if not messages:
            return
        records = [lambda_record(m, arn, "us-east-1") for m in messages]
        t0 = time.perf_counter()
        answer = handler({"Records": records}, _context())
        if "ms" in timing:
            timing["ms"].append((time.perf_counter() - t0) * 1000)
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        bodies += [r["body"] for r in records]
        done = [r for r in records if r["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            sqs.delete_message_batch(QueueUrl=queue, Entries=entries)


# --- before issue 19: the usage writes of the old ledger, replayed on this run's events --------


def _before_table(env: dict[str, str]) -> str:
    import boto3
    from tollway.dev.template import read_template

    usage = read_template(ROOT / "template.yaml")["Resources"]["UsageTable"]["Properties"]
    name = "UsageTableBefore"
    boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"]).create_table(
        TableName=name,
        AttributeDefinitions=usage["AttributeDefinitions"],
        KeySchema=usage["KeySchema"],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _before(dynamodb: Any, table: str, bodies: list[str]) -> None:
    import orjson
    from tollway.usage.billing import FREE
    from tollway.usage.events import UsageEvent

    for body in bodies:
        data = orjson.loads(body)
        for event in data.get("events", [data]):
            before_record(dynamodb, table, UsageEvent.model_validate(event), FREE.currency)


def before_record(dynamodb: Any, table: str, event: Any, currency: str) -> None:
    """What `Ledger.record` wrote per event before issue 19 (git show 43790f0:.../billing.py):
    one transaction of a conditional EVENT# put and ADDs to four totals items."""
    from tollway.usage import table as keys
    from tollway.usage.billing import COUNTERS, Price, counts

    c = counts(event, Price(500_000, currency))
    names = {f"#{n}": n for n in COUNTERS} | {"#plan": "plan", "#currency": "currency"}
    values = {f":{n}": {"N": str(getattr(c, n))} for n in COUNTERS} | {
        ":plan": {"S": event.plan},
        ":currency": {"S": currency},
    }
    update = "ADD " + ", ".join(f"#{n} :{n}" for n in COUNTERS) + " SET #plan = :plan, #currency = :currency"
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": table,
                "Item": {
                    **keys.dedupe_key(event.event_id),
                    "consumer": {"S": event.consumer_id},
                    "timestamp": {"S": event.timestamp.isoformat()},
                    "expires_at": {"N": str(int(time.time()) + 90 * 86_400)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
    ]
    old_keys = [
        keys.totals_key(event.consumer_id, period, route)
        for period in (event.day, event.month)
        for route in (None, event.route_id)
    ]
    for key in old_keys:
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": key,
                    "UpdateExpression": update,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        )
    dynamodb.transact_write_items(TransactItems=items)


# --- the rows --------------------------------------------------------------------------------


@dataclass
class Bill:
    """Dollars per million requests, by line."""

    front_door: float
    lambda_requests: float
    lambda_compute: float
    dynamodb: float
    sqs: float
    logs: float

    @property
    def total(self) -> float:
        lines = (self.front_door, self.lambda_requests, self.lambda_compute, self.dynamodb, self.sqs)
        return sum(lines) + self.logs

    def breakdown(self) -> str:
        parts = [
            ("front door", self.front_door),
            ("Lambda requests", self.lambda_requests),
            ("GB-s", self.lambda_compute),
            ("DynamoDB", self.dynamodb),
            ("SQS", self.sqs),
            ("logs", self.logs),
        ]
        return " + ".join(f"{name} {value:.2f}" for name, value in parts)


def platform_bytes() -> int:
    return sum(len(line.encode()) + LOG_EVENT_OVERHEAD for line in PLATFORM_LINES)


def bill(m: dict[str, Any], template: dict[str, Any], front_door: str, before: bool = False) -> Bill:
    n = m["requests"]
    per_m = 1e6 / n
    router_gb = template["router_memory_mb"] / 1024
    usage_gb = template["memory_mb"] / 1024
    batches = m["usage_batches"]
    gb_s = router_gb * m["router_billed_ms"] / 1000 * n + usage_gb * m["usage_billed_ms"] / 1000
    units = [m["router_units"], m["usage_units"]]
    if before:  # the same calls, but the usage function's writes as the old ledger made them
        queue = {k: v for k, v in m["usage_units"].items() if "sqs" in k}
        units = [m["router_units"], m["before_units"], queue]
    writes = sum(u.get("dynamodb.write", 0) for u in units)
    reads = sum(u.get("dynamodb.read", 0) for u in units)
    sqs = sum(u.get("sqs.requests", 0) for u in units)
    logs = [m["before_router_logs"] if before else m["router_logs"], m["usage_logs"]]
    log_bytes = sum(x.get("bytes", 0) + LOG_EVENT_OVERHEAD * x.get("lines", 0) for x in logs)
    router_platform = before or template["router_platform_lines"]
    invocations = (n if router_platform else 0) + (batches if template["usage_platform_lines"] else 0)
    log_bytes += platform_bytes() * invocations
    door = PRICES["http_api_request"] if front_door == "http_api" else PRICES["function_url_request"]
    return Bill(
        front_door=door * 1e6,
        lambda_requests=PRICES["lambda_request"] * (n + batches) * per_m,
        lambda_compute=PRICES["lambda_gb_second"] * gb_s * per_m,
        dynamodb=(writes * PRICES["dynamodb_write_unit"] + reads * PRICES["dynamodb_read_unit"]) * per_m,
        sqs=sqs * PRICES["sqs_request"] * per_m,
        logs=log_bytes / 1e9 * PRICES["logs_ingested_gb"] * per_m,
    )


def _dollars(v: float) -> str:
    return f"${v:.2f}/M"


TARGET = 2.00


def rows(r: dict[str, Any]) -> list[Row]:
    c = r.get("cost")
    if c is None:
        return [Row("C1", "cost per million requests", "not run", "", "", "—", "pending")]
    if "error" in c:
        return [Row("C1", "cost per million requests", "error", str(c["error"])[:120], "", "—", "error")]
    template = c["template"]
    rest, http = PRICES["rest_api_request"] * 1e6, PRICES["http_api_request"] * 1e6
    out = []
    plans = f"REST API + usage plans {_dollars(rest)}"
    labels = {
        "public": ("C1", "public route (no key, no quota; usage event)", f"HTTP API {_dollars(http)}", http),
        "keyed": ("C2", "keyed route (API key, exact quota, billed)", plans, rest),
        "metered": ("C3", "metered route (tokens reserved, settled, billed)", plans, rest),
    }
    for kind, (num, what, base_text, base) in labels.items():
        m = c.get(kind)
        if not m:
            continue
        doors = (("http_api", "", "behind HTTP API"), ("function_url", "b", "behind a function URL"))
        for door, suffix, name in doors:
            b = bill(m, template, door)
            target = f"≤ {_dollars(TARGET)} all-in" if kind == "keyed" else "—"
            status = _met_(b.total <= TARGET) if kind == "keyed" else "info"
            baseline = base_text if kind != "public" else base_text
            if kind == "keyed":
                baseline += f"; HTTP API {_dollars(http)}"
            out.append(
                Row(
                    num + suffix,
                    f"$ per million, {what}, {name}: {b.breakdown()}",
                    _dollars(b.total),
                    baseline,
                    f"{b.total / base:.2f}x",
                    target,
                    status,
                )
            )
    m = c.get("keyed")
    if m:
        b = bill(m, template, "http_api", before=True)
        out.append(
            Row(
                "C2-before",
                "… keyed, behind HTTP API, before issue 19 (this run's requests with the old usage "
                "writes, a 5-item transaction per event, and the old access and platform log lines): "
                + b.breakdown(),
                _dollars(b.total),
                f"REST API + usage plans {_dollars(rest)}",
                f"{b.total / rest:.2f}x",
                f"≤ {_dollars(TARGET)} all-in",
                _met_(b.total <= TARGET),
            )
        )
    out.append(
        Row(
            "C-note",
            f"prices: us-east-1, arm64, on-demand, list of {PRICES_DATE}; router "
            f"{template['router_memory_mb']} MB, {c['backend_ms']:g} ms stated backend latency; usage "
            f"batches of up to {template['batch_size']}, {c['consumers']} consumers",
            "",
            "",
            "",
            "—",
            "info",
        )
    )
    return out


def _met_(ok: bool) -> str:
    return "met" if ok else "NOT MET"
