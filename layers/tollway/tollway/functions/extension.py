"""A Lambda internal extension that flushes usage events after each response.

Lambda returns the function's response as soon as the runtime posts it, and keeps the
environment running until every extension asks for its next event. This thread of the
runtime process registers for INVOKE during init, then for each invocation: waits until
the wrapped handler has returned, flushes the buffer (SendMessageBatch) and only then asks
for the next event. The runtime posts the response holding the GIL (awslambdaric's
`post_invocation_result`), and releases it while it waits for the next invocation, which
is when this thread runs: the caller never waits for SQS.

    handler = extension.attach(Mangum(app), recorder, runtime_api=os.environ.get("AWS_LAMBDA_RUNTIME_API"))

Internal extensions cannot receive SHUTDOWN; the emitter logs a failed event the first
time its send fails, so a reaped environment loses nothing (see docs/usage.md).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from tollway.observability import logger

NAME = "tollway-usage"
# Consecutive failures to reach the Extensions API after which the thread stops.
MAX_FAILURES = 5
LambdaHandler = Callable[[Any, Any], Any]


class Flusher(Protocol):
    def flush(self) -> object: ...


class Chain:
    """Several flushers in one after-response window, in order; one failing stops none."""

    def __init__(self, flushers: list[Flusher]) -> None:
        self.flushers = flushers

    def flush(self) -> object:
        for flusher in self.flushers:
            try:
                flusher.flush()
            except Exception:
                logger.exception("usage extension: flush failed")
        return None


def chain(*flushers: Flusher | None) -> Flusher | None:
    """The flushers that exist, as one (None: nothing to flush after a response)."""
    present = [f for f in flushers if f is not None]
    return Chain(present) if len(present) > 1 else (present[0] if present else None)


class UsageExtension:
    def __init__(self, flusher: Flusher, runtime_api: str, name: str = NAME) -> None:
        self.flusher = flusher
        self.base = f"http://{runtime_api}/2020-01-01/extension"
        self.name = name
        self.identifier: str | None = None
        self.invocations = 0
        self._returned = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        request = urllib.request.Request(
            f"{self.base}/register",
            data=json.dumps({"events": ["INVOKE"]}).encode(),
            headers={"Lambda-Extension-Name": self.name, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - the runtime API
            self.identifier = answer.headers["Lambda-Extension-Identifier"]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wrap(self, handler: LambdaHandler) -> LambdaHandler:
        def invoke(event: Any, context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                self._returned.set()

        return invoke

    def _next(self) -> dict[str, Any]:
        assert self.identifier is not None
        request = urllib.request.Request(
            f"{self.base}/event/next", headers={"Lambda-Extension-Identifier": self.identifier}
        )
        # No timeout: the environment is frozen while this waits.
        with urllib.request.urlopen(request) as answer:  # noqa: S310 - the runtime API
            return json.loads(answer.read())

    def _run(self) -> None:
        failures = 0
        while True:
            try:
                event = self._next()
            except Exception:
                failures += 1
                if failures >= MAX_FAILURES:
                    # The runtime API is gone: stop asking. Unsent events overflow to the log.
                    logger.exception("usage extension: giving up after repeated failures")
                    return
                logger.exception("usage extension: next event failed")
                time.sleep(1)
                continue
            failures = 0
            if event.get("eventType") == "SHUTDOWN":
                self._flush()
                return
            self.invocations += 1
            # The invocation has started; its response goes out once the handler returns.
            deadline_ms = event.get("deadlineMs")
            timeout = max(0.0, deadline_ms / 1000 - time.time()) if deadline_ms else None
            self._returned.wait(timeout)
            self._returned.clear()
            self._flush()

    def _flush(self) -> None:
        try:
            self.flusher.flush()
        except Exception:
            logger.exception("usage extension: flush failed")


def start(flusher: Flusher | None, runtime_api: str | None, name: str = NAME) -> UsageExtension | None:
    """Register and start the extension; None when not on Lambda or nothing to flush."""
    if runtime_api is None or flusher is None:
        return None
    extension = UsageExtension(flusher, runtime_api, name)
    try:
        extension.register()
    except Exception:
        # Metering must not take the gateway down: unsent events overflow to the log.
        logger.exception("usage extension: registration failed; events will be logged, not sent")
        return None
    extension.start()
    return extension


def attach(
    handler: LambdaHandler, flusher: Flusher | None, runtime_api: str | None, name: str = NAME
) -> LambdaHandler:
    """`handler`, wrapped so that the extension flushes after each response (one call for adapters)."""
    extension = start(flusher, runtime_api, name)
    return extension.wrap(handler) if extension else handler
