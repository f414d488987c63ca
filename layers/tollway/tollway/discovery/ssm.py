"""`ssm:/path/name`: an SSM parameter holding one URL or a comma-separated list of URLs."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

from tollway.table.targets import parse_urls


class SsmLookup:
    def __init__(self, client: Any) -> None:
        self.provider = SSMProvider(boto3_client=client)

    def __call__(self, name: str) -> tuple[str, ...]:
        # The resolver keeps its own TTL and last good value; Powertools' cache would drop a
        # value on a failed fetch, so it is bypassed.
        value = self.provider.get(name, force_fetch=True)
        if not isinstance(value, str):
            raise ValueError(f"parameter {name} holds no text")
        return parse_urls(value)
