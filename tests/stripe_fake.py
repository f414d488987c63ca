"""A loopback stand-in for Stripe's meter-event endpoint, as Stripe documents it.

`POST /v1/billing/meter_events` (form-encoded: `event_name`, `payload[...]`, `identifier`,
`timestamp`), authenticated by `Authorization: Bearer <secret key>`. It answers as Stripe
does: the meter event object; 401 for a wrong key; 400 `invalid_request_error` for a
missing field, a value that is not a whole number, an identifier over 100 characters, a
timestamp more than 35 days old or 5 minutes ahead, a customer it does not know, and an
identifier it already holds within 24 hours ("An event already exists with identifier
<id>.", with `Stripe-Should-Retry: false`). Every request is recorded; `accepted` holds the
events it kept. Faults on demand: `fail_next(status)` answers the next request(s) with an
error without keeping anything; `lose_next_answer()` keeps the next event and closes the
connection without answering (the answer lost on the way back).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

DEDUPE_WINDOW_S = 24 * 3600
MAX_AGE_S = 35 * 86_400
MAX_AHEAD_S = 300


@dataclass
class Received:
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class FakeStripe:
    api_key: str = "sk_test_fake0123456789"
    customers: set[str] = field(default_factory=lambda: {"cus_acme", "cus_beta"})
    clock: Callable[[], float] = time.time
    received: list[Received] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    _seen: dict[str, float] = field(default_factory=dict)
    _faults: list[int] = field(default_factory=list)  # statuses; 0: keep the event, answer nothing
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, status: int, times: int = 1) -> None:
        self._faults += [status] * times

    def lose_next_answer(self) -> None:
        self._faults.append(0)

    def totals(self) -> dict[tuple[str, str], int]:
        """Units Stripe would bill: per (event name, customer), summed over kept events."""
        out: dict[tuple[str, str], int] = {}
        for e in self.accepted:
            key = (e["event_name"], e["payload"]["stripe_customer_id"])
            out[key] = out.get(key, 0) + int(e["payload"]["value"])
        return out

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                got = Received(self.path, form, {k.lower(): v for k, v in self.headers.items()})
                with fake._lock:
                    fake.received.append(got)
                    status, body, extra = fake._answer(self.path, form, got.headers)
                got.status = status
                if status == 0:  # kept, and the connection dies before the answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_fake{len(fake.received)}")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- Stripe's rules ---------------------------------------------------------------

    def _answer(self, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any, dict]:
        if path != "/v1/billing/meter_events":
            return 404, _error(f"Unrecognized request URL (POST: {path})."), {}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            return 401, _error(f"Invalid API Key provided: {given[:8]}****{given[-4:]}"), {}
        if self._faults and self._faults[0] != 0:
            status = self._faults.pop(0)
            return status, _error("An unknown error occurred", "api_error"), {}
        now = self.clock()
        name, ident = form.get("event_name"), form.get("identifier", "")
        customer, value = form.get("payload[stripe_customer_id]"), form.get("payload[value]", "")
        timestamp = int(form.get("timestamp", now))
        if not name or customer is None:
            return 400, _error("Missing required param: event_name or payload[stripe_customer_id]."), {}
        if not value.isdigit():
            return 400, _error("The value must be a whole number."), {}
        if len(ident) > 100:
            return 400, _error("Invalid identifier: must be at most 100 characters"), {}
        if not now - MAX_AGE_S <= timestamp <= now + MAX_AHEAD_S:
            return 400, _error("Timestamp must be within the past 35 calendar days."), {}
        if customer not in self.customers:
            return 400, _error(f"No such customer: '{customer}'"), {}
        if ident in self._seen and now - self._seen[ident] < DEDUPE_WINDOW_S:
            return (
                400,
                _error(f"An event already exists with identifier {ident}."),
                {"stripe-should-retry": "false"},
            )
        self._seen[ident] = now
        event = {
            "object": "billing.meter_event",
            "created": int(now),
            "event_name": name,
            "identifier": ident,
            "livemode": False,
            "payload": {k[8:-1]: v for k, v in form.items() if k.startswith("payload[")},
            "timestamp": timestamp,
        }
        self.accepted.append(event)
        if self._faults and self._faults[0] == 0:
            self._faults.pop(0)
            return 0, None, {}
        return 200, event, {}


def _error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}
