"""Stripe Billing meter events through the official `stripe` package: the one adapter.

`POST /v1/billing/meter_events` with `event_name`, `payload[<customer key>]`,
`payload[<value key>]` (a whole number), `identifier` and `timestamp`. Stripe refuses an
identifier it already holds (within a rolling window of at least 24 hours) with a 400
`invalid_request_error` whose message names it ("An event already exists with identifier
<id>."); Stripe documents no error code for it, so that answer, and only with our own
identifier in its message, is read as "already delivered". If Stripe changes the text, it
fails safe: a refused re-send keeps its pending record and waits for a person
(usage/push.py), so nothing is billed twice.

Only the CLI and StripePushFunction import this module (and `stripe`); the router never does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_SECRET = re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class MeterEvent:
    event_name: str
    customer: str
    value: int
    identifier: str
    timestamp: int
    customer_key: str = "stripe_customer_id"
    value_key: str = "value"

    def params(self) -> dict[str, Any]:
        return {
            "event_name": self.event_name,
            "payload": {self.customer_key: self.customer, self.value_key: str(self.value)},
            "identifier": self.identifier,
            "timestamp": self.timestamp,
        }


class PushError(Exception):
    """Stripe did not confirm an event. `stored_nothing`: Stripe refused it (4xx), so it kept
    nothing and the event may be rebuilt; otherwise it may hold it (a 5xx, a lost answer).
    `halt`: the cause is not this event's (network, credentials, rate): stop the run."""

    def __init__(self, message: str, *, stored_nothing: bool, halt: bool) -> None:
        super().__init__(one_line(message))
        self.stored_nothing = stored_nothing
        self.halt = halt


def one_line(text: str, limit: int = 300) -> str:
    text = _SECRET.sub(r"\1_\2_***", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_api_base(url: str) -> str:
    """An API base other than Stripe's must be https, or http on loopback (a test server)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"Stripe API base {url!r} must be https (plain http only on loopback)")
    return url.rstrip("/")


class StripeMeterEvents:
    """Sends meter events; one client (and connection pool) per process."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout_s: float = 20.0,
        max_network_retries: int = 2,
    ) -> None:
        import stripe

        self._stripe = stripe
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": check_api_base(api_base)} if api_base else None,
            # Retries reuse one Idempotency-Key (the package sets one on every POST).
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )

    def send(self, event: MeterEvent) -> bool:
        """True: Stripe created the event now; False: it already held this identifier."""
        stripe = self._stripe
        try:
            self.client.v1.billing.meter_events.create(params=event.params())  # type: ignore[arg-type]
            return True
        except stripe.InvalidRequestError as exc:
            if is_duplicate(exc, event.identifier):
                return False
            raise PushError(describe(exc), stored_nothing=True, halt=False) from None
        except (stripe.AuthenticationError, stripe.PermissionError, stripe.RateLimitError) as exc:
            raise PushError(describe(exc), stored_nothing=True, halt=True) from None
        except stripe.APIConnectionError as exc:
            raise PushError(
                f"Stripe could not be reached: {network_cause(exc)}", stored_nothing=False, halt=True
            ) from None
        except stripe.StripeError as exc:  # 5xx, 409 and anything else: it may hold the event
            raise PushError(describe(exc), stored_nothing=False, halt=True) from None


def is_duplicate(exc: Any, identifier: str) -> bool:
    message = exc.user_message or ""
    return exc.http_status == 400 and "already exists" in message and identifier in message


def describe(exc: Any) -> str:
    return f"Stripe answered {exc.http_status}: {exc.user_message or type(exc).__name__}"


def network_cause(exc: Any) -> str:
    """The package's message is a paragraph; its last line names the cause."""
    text = str(exc.user_message or exc)
    cause = text.rsplit("(Network error:", 1)[-1].rstrip(") \n") if "(Network error:" in text else text
    return one_line(cause, 200)


def api_key(environ: Mapping[str, str]) -> str:
    """`STRIPE_API_KEY`, else the Secrets Manager secret named by `TOLLWAY_STRIPE_SECRET_ID`
    (its value is the key). Raises LookupError saying which to set."""
    if environ.get("STRIPE_API_KEY"):
        return environ["STRIPE_API_KEY"]
    secret_id = environ.get("TOLLWAY_STRIPE_SECRET_ID")
    if not secret_id:
        raise LookupError(
            "no Stripe API key: set STRIPE_API_KEY, or TOLLWAY_STRIPE_SECRET_ID to a Secrets Manager secret"
        )
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_id, max_age=300)
    except parameters.exceptions.GetParameterError as exc:
        raise LookupError(f"the Stripe key secret {secret_id!r} could not be read: {one_line(exc)}") from None
    if not isinstance(value, str) or not value.strip():
        raise LookupError(f"the Stripe key secret {secret_id!r} is empty")
    return value.strip()
