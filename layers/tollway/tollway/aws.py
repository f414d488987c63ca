"""boto3 clients, created once per container, endpoints the standard boto3 way.

`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are read by botocore itself, so the
same code talks to AWS, the dev emulator and `sam local` without a branch here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Short timeouts and few retries: the request path has a deadline of its own.
# A key lookup that hangs costs at most 2 x 1.5 s, inside the default 3 s deadline.
HOT_PATH = Config(
    connect_timeout=0.5,
    read_timeout=1,
    retries={"max_attempts": 2, "mode": "standard"},
    max_pool_connections=64,
    tcp_keepalive=True,
)


@cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


def client(service: str, config: Config | None = HOT_PATH) -> Any:
    """A new client; callers keep it for the life of the container."""
    return session().client(service, config=config)
