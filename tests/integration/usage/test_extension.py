"""The Lambda extension against a fake Extensions API on loopback, around the real router.

The fake plays Lambda: it answers register, hands out INVOKE events one at a time, and
notes how many SendMessageBatch calls had been made each time the extension asked for
its next event.
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mangum import Mangum
from tollway.functions import extension

from .conftest import build_stack, queue_depth, wait_for

EVENTS = Path(__file__).resolve().parents[2] / "events"


class FakeExtensionsApi:
    def __init__(self, sends: Callable[[], int]) -> None:
        self.sends = sends
        self.registrations: list[tuple[dict[str, str], Any]] = []
        self.next_calls: list[tuple[str | None, int]] = []  # (identifier, SQS sends so far)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"] == "/2020-01-01/extension/register":
            self.registrations.append((headers, json.loads(body)))
            await self._reply(send, {"functionName": "router"}, [(b"lambda-extension-identifier", b"ext-1")])
        elif scope["method"] == "GET" and scope["path"] == "/2020-01-01/extension/event/next":
            self.next_calls.append((headers.get("lambda-extension-identifier"), self.sends()))
            while self.events.empty():
                await asyncio.sleep(0.005)
            await self._reply(send, self.events.get(), [])
        else:
            await self._reply(send, {"error": "not found"}, [], status=404)

    @staticmethod
    async def _reply(send: Any, payload: Any, headers: list[tuple[bytes, bytes]], status: int = 200) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def invoke_event() -> dict[str, Any]:
    return {"eventType": "INVOKE", "deadlineMs": int(time.time() * 1000) + 10_000, "requestId": "r"}


def test_events_are_sent_after_the_response_before_the_next_event(aws, infra, backend_url, serve):
    stack = build_stack(aws, infra, backend_url)

    def sends() -> int:
        return stack.emitter.sqs.calls

    api = FakeExtensionsApi(sends)
    runtime_api = serve(api).removeprefix("http://")

    mangum = Mangum(stack.app, lifespan="off")
    sends_at_return: list[int] = []

    def router(event: Any, context: Any) -> Any:
        response = mangum(event, context)
        sends_at_return.append(sends())
        return response

    handler = extension.attach(router, stack.emitter, runtime_api=runtime_api)
    ((headers, body),) = api.registrations
    assert headers["lambda-extension-name"] == "tollway-usage"
    assert body == {"events": ["INVOKE"]}
    wait_for(lambda: len(api.next_calls) == 1, what="first next")

    event = json.loads((EVENTS / "http_api_v2_usage_get.json").read_text())
    context = SimpleNamespace(aws_request_id="r", get_remaining_time_in_millis=lambda: 10_000)
    for n in (1, 2):
        api.events.put(invoke_event())  # Lambda starts invocation n: the extension waits for the handler
        response = handler(event, context)
        assert response["statusCode"] == 200
        wait_for(lambda n=n: len(api.next_calls) == n + 1, what="next event requested")
        # The handler returned before any AWS call; the extension sent, then asked for more.
        assert sends_at_return[-1] == n - 1
        assert api.next_calls[-1] == ("ext-1", n)
    assert queue_depth(stack.sqs, stack.env["TOLLWAY_USAGE_QUEUE_URL"]) == 2
    message = stack.sqs.receive_message(QueueUrl=stack.env["TOLLWAY_USAGE_QUEUE_URL"])["Messages"][0]["Body"]
    assert "secret" not in message and "acme" in message
    # End the extension's thread, so that it does not outlive the test asking a gone server.
    api.events.put({"eventType": "SHUTDOWN"})


def test_not_on_lambda_it_is_a_no_op(aws, infra, backend_url):
    stack = build_stack(aws, infra, backend_url)

    def handler(event: Any, context: Any) -> str:
        return "ok"

    assert extension.start(stack.emitter, runtime_api=None) is None
    assert extension.attach(handler, stack.emitter, runtime_api=None) is handler
