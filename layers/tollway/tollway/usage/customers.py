"""Which Stripe customer pays for a consumer: one item per consumer in UsageTable
(`CONSUMER#<id>` / `STRIPE#CUSTOMER`, table.py), set by `tollway usage stripe-customer`.

It lives with the consumer's usage, not on an API key: a consumer may hold several keys, or
none (a JWT subject), and the mapping changes without a deploy. A push sends each new delta
to the customer mapped at that time (usage/push.py).
"""

from __future__ import annotations

import re
from typing import Any

from tollway.usage import table

CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]{1,250}$")


class StripeCustomers:
    def __init__(self, dynamodb: Any, usage_table: str) -> None:
        self.dynamodb = dynamodb
        self.table = usage_table

    def get(self, consumer: str) -> str | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key=table.customer_key(consumer), ConsistentRead=True
        ).get("Item")
        return item["stripe_customer"]["S"] if item and "stripe_customer" in item else None

    def set(self, consumer: str, customer: str) -> None:
        if not CUSTOMER_ID.match(customer):
            raise ValueError(f"{customer!r} is not a Stripe customer id (cus_...)")
        item = {**table.customer_key(consumer), "stripe_customer": {"S": customer}}
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def remove(self, consumer: str) -> None:
        self.dynamodb.delete_item(TableName=self.table, Key=table.customer_key(consumer))
