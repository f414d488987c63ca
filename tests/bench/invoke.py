"""A warm container in this process: `functions/router/app.handler` fed HTTP API v2 events.

Also the botocore event hook that counts AWS calls, and the naive floor under Mangum.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tests import lambda_router
from tests.lambda_router import Context

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


CONTEXT = Context("bench")


def load_router(env: dict[str, str]) -> ModuleType:
    """A fresh container: the router module imported anew, as Lambda's init does."""
    os.environ.update(env)
    return lambda_router.load_router()


def floor_handler(backend: str) -> Handler:
    from mangum import Mangum

    from tests.bench.floor import naive_app

    return Mangum(naive_app(backend), lifespan="off")


def http_event(path: str, headers: dict[str, str] | None = None, method: str = "GET") -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as tests/events/ holds them."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": "abc123xyz.execute-api.us-east-1.amazonaws.com",
            "user-agent": "bench/1.0",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-proto": "https",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123xyz",
            "domainName": "abc123xyz.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123xyz",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "bench/1.0",
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2026:23:40:00 +0000",
            "timeEpoch": 1795736400000,
        },
        "isBase64Encoded": False,
    }


class AwsCalls:
    """Counts AWS API calls through botocore's `before-call` event, by thread and operation.

    Attach before any client exists: a client copies its session's handlers when created.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def attach(self) -> None:
        import boto3
        from tollway import aws

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        for session in {id(s): s for s in (aws.session(), boto3.DEFAULT_SESSION)}.values():
            session.events.register("before-call", self._on_call)

    def attach_transport(self, router: ModuleType) -> None:
        """Also count the calls that bypass botocore: key lookups and quota calls go to
        DynamoDB through the gateway's shared HTTP exchanger (tollway.aws.dynamodb)."""
        admission = router.app.gateway.admission
        if admission is None:
            return
        # One caller per container (tollway.assemble): the key lookups' too.
        exchanger = admission.store.caller.exchanger
        send = exchanger.request

        async def counted(method: str, url: str, headers: Any, body: Any, **options: Any) -> Any:
            target = dict(headers).get("x-amz-target")
            if target:
                with self._lock:
                    self.calls.append((threading.get_ident(), f"dynamodb.{target.rpartition('.')[2]}"))
            return await send(method, url, headers, body, **options)

        exchanger.request = counted

    def attach_usage(self, router: ModuleType) -> None:
        """Count the usage sends too: the lean SQS sender (tollway.aws.sqs) bypasses botocore."""
        usage = router.app.gateway.usage
        if usage is None:
            return
        sqs = usage.sqs
        send = sqs.send_message_batch

        def counted(**kwargs: Any) -> Any:
            with self._lock:
                self.calls.append((threading.get_ident(), "sqs.SendMessageBatch"))
            return send(**kwargs)

        sqs.send_message_batch = counted

    def _on_call(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((threading.get_ident(), f"{model.service_model.service_name}.{model.name}"))

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int, thread: int | None = None) -> Counter[str]:
        return Counter(op for t, op in self.calls[mark:] if thread is None or t == thread)
