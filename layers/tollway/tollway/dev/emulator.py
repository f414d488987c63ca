"""The AWS emulator of `tollway dev`: the moto server, run in a sidecar process of its own.

moto computes a queue's three approximate message counts by scanning every message it holds
(and reading the clock once per message), and its SendMessage reads them for every message
it accepts. Under load the usage queue grows faster than the dev usage function drains it
(one DynamoDB transaction per event), so each send cost more than the last: measured with
wrk -c32 on a public route, moto's SQS handlers took most of the CPU and the gateway fell
from ~600 to ~150 req/s within 30 s. SQS documents these counts as approximate and
eventually consistent; here each is recomputed at most once per `COUNT_TTL_S` (longer for a
deep queue), which keeps a send's cost flat however deep the queue.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

COUNT_TTL_S = 1.0
# A deep queue makes one count cost tens of ms: then keep it long enough that recounting
# takes at most ~5% of the emulator's time.
COUNT_COST_FACTOR = 20
COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def _cached(name: str, compute: Callable[[Any], int], ttl_s: float) -> property:
    slot = f"_tollway_cached_{name}"

    def get(queue: Any) -> int:
        now = time.monotonic()
        cached = queue.__dict__.get(slot)
        if cached is not None and now < cached[0]:
            return cached[1]
        value = compute(queue)
        cost = time.monotonic() - now
        queue.__dict__[slot] = (now + max(ttl_s, COUNT_COST_FACTOR * cost), value)
        return value

    return property(get, doc=f"{name}, recomputed at most every {ttl_s:g} s (tollway dev)")


def cache_queue_counts(ttl_s: float = COUNT_TTL_S) -> list[str]:
    """Make moto's approximate queue counts cheap; the names changed (none if moto changed shape)."""
    from moto.sqs.models import Queue

    changed = []
    for name in COUNTS:
        current = Queue.__dict__.get(name)
        if isinstance(current, property) and current.fget is not None:
            setattr(Queue, name, _cached(name, current.fget, ttl_s))
            changed.append(name)
    return changed


def serialized(app: Callable[..., Any]) -> Callable[..., Any]:
    """The WSGI app, one request at a time.

    moto's backends take no lock: under load a TransactWriteItems (which deep-copies the
    table to roll back) failed with "dictionary changed size during iteration" while
    another request wrote the table, and conditional updates can both succeed (the bench
    serializes its moto server for the same reason). DynamoDB applies writes to an item
    one at a time; so does this emulator, to every item.
    """
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return one_at_a_time


def signed_for(environ: dict[str, Any]) -> str | None:
    """The service a request is for: its SigV4 credential scope names it (every SDK signs),
    else the JSON protocol's target prefix."""
    scope = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope:
        return scope.group(1)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return "sqs" if target.startswith("AmazonSQS.") else None


_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
# Request fields that describe the connection, not the request: not forwarded.
_HOP = {"HTTP_CONNECTION", "HTTP_KEEP_ALIVE", "HTTP_TRANSFER_ENCODING", "HTTP_TE", "HTTP_UPGRADE"}


def sqs_front(app: Callable[..., Any], sqs_url: str) -> Callable[..., Any]:
    """One endpoint for every service: requests for SQS are passed to the queues' own
    emulator (see `tollway dev`), the rest to `app`.

    So `AWS_ENDPOINT_URL` alone reaches every table, queue and secret, as env.local.json
    gives it to `sam local`. The Host field is kept: queue URLs in the answers name this
    endpoint, and moto finds a queue by the name in its URL, whichever host it names.
    """
    target = urlsplit(sqs_url)

    def front(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if signed_for(environ) != "sqs":
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key not in _HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING") and "?" not in path:
            path += "?" + environ["QUERY_STRING"]
        # ReceiveMessage long-polls for up to 20 s.
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            connection.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        framing = ("connection", "transfer-encoding")
        kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in framing]
        start_response(f"{answer.status} {answer.reason}", kept)
        return [payload]

    return front


def start_emulator(
    host: str, port: int, *, serialize: bool = True, sqs_url: str | None = None
) -> tuple[str, Callable[[], None]]:
    """The moto server on host:port (0: any free port); its URL and the function that stops it.

    `serialize=False` for the queues' emulator: a long-polling ReceiveMessage waits for up
    to its WaitTimeSeconds, and moto's SQS keeps its own lock on each queue's messages.
    `sqs_url`: the queues' emulator, to which this one passes every SQS request (`sqs_front`).

    Built here rather than with moto's ThreadedMotoServer, whose start() waits forever
    when the port cannot be bound: here the OSError reaches the caller.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # The emulator's own request log would drown the gateway's.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    cache_queue_counts()
    if port:
        # werkzeug's make_server prints its own advice and exits when the port is taken.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    app: Callable[..., Any] = DomainDispatcherApplication(create_backend_app)
    if serialize:
        app = serialized(app)
    if sqs_url:
        app = sqs_front(app, sqs_url)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return f"http://{host}:{server.server_port}", stop
