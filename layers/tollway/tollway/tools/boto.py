"""`BotoCaller`: the lean DynamoDB caller's calls (tollway.aws.dynamodb.Caller) made through a
boto3 client instead, blocking, at botocore's cost (about 800 µs a call here). For tools,
tests and the bench's baseline; the request path never imports it.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.aws.errors import AwsError


class BotoCaller:
    """The same calls through a boto3 client: blocking, botocore's cost; for tools and tests."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(
        self, operation: str, body: bytes, *, deadline: float | None = None, resend: bool = True
    ) -> dict[str, Any]:
        from botocore import xform_name
        from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

        method = getattr(self.client, xform_name(operation))
        try:
            return method(**orjson.loads(body))
        except ClientError as error:
            response: dict[str, Any] = error.response  # type: ignore[assignment]
            code = response.get("Error", {}).get("Code", "BadResponse")
            raise AwsError(
                code, response, response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            ) from error
        except ReadTimeoutError as error:
            raise AwsError("Timeout") from error
        except BotoCoreError as error:
            raise AwsError("ConnectionError") from error
