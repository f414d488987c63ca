"""The process-wide Powertools logger and metrics, and the access-log line."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from tollway.http.messages import Request, Response

logger = Logger(service="tollway")
metrics = Metrics(namespace="Tollway", service="tollway")


def access_log(
    request: Request, response: Response, route_id: str | None, latency_ms: float, consumer: str | None
) -> None:
    logger.info(
        "access",
        extra={
            "request_id": request.request_id,
            "method": request.method,
            "path": request.path,
            "route_id": route_id,
            "status": response.status,
            "latency_ms": round(latency_ms, 3),
            "consumer_id": consumer,
            "client_ip": request.client_ip,
            "request_bytes": len(request.body),
            "response_bytes": len(response.body),
        },
    )
