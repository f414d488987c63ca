"""The process-wide Powertools logger, the access-log line, and rare-event metrics.

The access-log line is also the request's metrics record: it carries CloudWatch Embedded
Metric Format metadata (`_aws`), so CloudWatch Logs extracts Requests, Errors4xx,
Errors5xx, Latency and QuotaRejected per route from the one line the router writes
anyway — no extra call, no flush to forget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from tollway.core.messages import Request, Response

NAMESPACE = "Tollway"
logger = Logger(service="tollway")

_EMF_METRICS = [
    {"Name": "Requests", "Unit": "Count"},
    {"Name": "Errors4xx", "Unit": "Count"},
    {"Name": "Errors5xx", "Unit": "Count"},
    {"Name": "QuotaRejected", "Unit": "Count"},
    {"Name": "Latency", "Unit": "Milliseconds"},
]
_EMF_DIRECTIVE = [{"Namespace": NAMESPACE, "Dimensions": [["service", "route"]], "Metrics": _EMF_METRICS}]


def bind_request_id(rid: str, trace_id: str | None = None) -> None:
    """Stamp `rid` as the correlation id, and the W3C trace id, of every log line written
    for the current request.

    Powertools' `set_correlation_id` sets a key of the process-wide logger: under uvicorn
    concurrent requests would stamp each other's ids. The thread-safe keys live in a
    context variable, which each asyncio task (one per request, under uvicorn and under
    Mangum alike) holds a copy of.
    """
    logger.thread_safe_append_keys(correlation_id=rid, trace_id=trace_id)


def with_lambda_context(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Powertools' Lambda context on every log line of an invocation, compactly: its request
    id and whether it is the container's first (`function_request_id`, `cold_start`, the
    names `logger.inject_lambda_context` uses). That decorator also adds the function's
    name, memory and ARN to every line, which the log group already says: at one access
    line per request, ~170 bytes of ingestion each."""
    cold = True

    def invoke(event: Any, context: Any) -> Any:
        nonlocal cold
        logger.append_keys(function_request_id=getattr(context, "aws_request_id", None), cold_start=cold)
        cold = False
        return handler(event, context)

    return invoke


def count(name: str, route_id: str | None = None) -> None:
    """One occurrence of a rare event (a failing store), written now as its own EMF record."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension("service", "tollway")
        metric.add_dimension("route", route_id or "unmatched")


def access_log(
    request: Request, response: Response, route_id: str | None, latency_ms: float, consumer: str | None
) -> None:
    """One line per request: who, which route, what status, how long; and the metrics.

    CloudWatch Logs bills every byte, on every request: a 2xx line carries what an operator
    needs and no more (the usage event has the method and the sizes). A refused or failed
    answer (4xx, 5xx) adds the method, the path and the client's address, to investigate it."""
    status = response.status
    latency = round(latency_ms, 3)
    extra = {
        "request_id": request.request_id,
        "consumer_id": consumer,
        "status": status,
        # Embedded Metric Format: the dimensions and values below become metrics.
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": _EMF_DIRECTIVE},
        "route": route_id or "unmatched",
        "Requests": 1,
        "Errors4xx": int(400 <= status < 500),
        "Errors5xx": int(status >= 500),
        "QuotaRejected": int(status == 429),
        "Latency": latency,
    }
    if status >= 400:
        extra.update(method=request.method, path=request.path, client_ip=request.client_ip)
    logger.info("access", extra=extra)
