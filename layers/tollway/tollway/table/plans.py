"""Usage plans as the route table holds them (plans.yaml, validated by tollway.config.models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    per: Literal["second", "minute"]
    burst: int | None = None


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    per: Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Price:
    per_1000_units: float = 0
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class StripeMeter:
    """Push this plan's units to Stripe Billing as meter events (docs/billing.md)."""

    meter: str  # the event_name of the Stripe meter
    customer_key: str = "stripe_customer_id"
    value_key: str = "value"


@dataclass(frozen=True, slots=True)
class Plan:
    rate: Rate | None = None
    quota: Quota | None = None
    price: Price = Price()
    stripe: StripeMeter | None = None
    shards: int = 1  # counter items a consumer's usage is spread over (docs/quota.md)
