"""The AWS JSON protocols (1.0: DynamoDB, SQS; 1.1: Secrets Manager): SigV4 for their one
request shape, and reading their answers.

`tollway.aws.dynamodb` (async, on the container's shared HTTP transport) and
`tollway.aws.blocking` (synchronous, one kept connection: the usage sender, the key secret)
speak them without botocore, whose generic machinery costs more CPU per call than a whole
proxied request. Both are checked against botocore's own SigV4 in the tests. Answers that
are not a 200 become `tollway.aws.errors.AwsError`, with the code botocore would report.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from tollway.aws.errors import AwsError

JSON_10 = "application/x-amz-json-1.0"
JSON_11 = "application/x-amz-json-1.1"
CONTENT_TYPE = JSON_10


def parse_answer(
    status: int, content: bytes, *, query_error: str | None = None, date: str | None = None
) -> dict[str, Any]:
    """The JSON answer of a 200, or AwsError with the code the service gave (or one of ours).

    The code is botocore's: the `__type` after its namespace ('#') and before any ':' suffix;
    for a query-compatible service (SQS) the code of its `x-amzn-query-error` header
    (`<code>;<Sender|Receiver>`, used only when it is exactly that and the body is the
    service's JSON), with the `__type` kept as the error's `shape`. An answer without a
    `__type` gets one of ours (botocore's would be the status, "503"). `date`, the answer's
    Date header, travels with the error."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        answer = None
    if status == 200:
        if isinstance(answer, dict):
            return answer
        raise AwsError("BadResponse", None, status, date=date)
    body = answer if isinstance(answer, dict) else None
    kind = body.get("__type") if body is not None else None
    if isinstance(kind, str) and kind:
        code = kind.partition(":")[0].rpartition("#")[2]
    else:
        code = "InternalServerError" if status >= 500 else "BadResponse"
    shape, fault = code, None
    if query_error is not None and body is not None:
        parts = query_error.split(";")
        if len(parts) == 2 and parts[0]:
            code, fault = parts
    raise AwsError(code, body, status, shape=shape, fault=fault, date=date)


class FrozenCredentials(Protocol):
    access_key: str
    secret_key: str
    token: str | None


class Credentials(Protocol):
    def get_frozen_credentials(self) -> FrozenCredentials: ...


class SigV4:
    """AWS Signature Version 4 for the AWS JSON protocols' one request shape: POST to
    `path`, no query, a JSON body, the operation in `x-amz-target`. DynamoDB, SQS
    (`service="sqs"`) and Secrets Manager (`service="secretsmanager"`, `content_type=JSON_11`)
    all speak it.

    Signed headers: content-type;host;x-amz-date;x-amz-security-token (with a session
    token);x-amz-target — what botocore's SigV4Auth signs for the same request.
    """

    def __init__(
        self, region: str, host: str, path: str = "/", service: str = "dynamodb", content_type: str = JSON_10
    ) -> None:
        self.region = region
        self.host = host
        self.path = path
        self.service = service
        self.content_type = content_type
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (date, secret, signing key)

    def headers(
        self, body: bytes, target: str, credentials: FrozenCredentials, now: float
    ) -> list[tuple[str, str]]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        date = amz_date[:8]
        token = credentials.token
        if token:
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            token_line = f"x-amz-security-token:{token}\n"
        else:
            signed = "content-type;host;x-amz-date;x-amz-target"
            token_line = ""
        canonical = (
            f"POST\n{self.path}\n\ncontent-type:{self.content_type}\nhost:{self.host}\nx-amz-date:{amz_date}\n"
            f"{token_line}x-amz-target:{target}\n\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(date, credentials.secret_key), to_sign.encode(), "sha256")
        headers = [
            ("host", self.host),
            ("content-type", self.content_type),
            ("x-amz-date", amz_date),
            ("x-amz-target", target),
            (
                "authorization",
                f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature.hexdigest()}",
            ),
        ]
        if token:
            headers.append(("x-amz-security-token", token))
        return headers

    def _signing_key(self, date: str, secret: str) -> bytes:
        # Four HMACs that change once a day (or when the credentials rotate): derive them once.
        cached_date, cached_secret, key = self._key
        if cached_date != date or cached_secret != secret:
            key = f"AWS4{secret}".encode()
            for part in (date, self.region, self.service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = (date, secret, key)
        return key


def canonical_host(endpoint: str) -> str:
    """The Host header botocore would sign: the endpoint's host, its port unless the default."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is None or parts.port == {"http": 80, "https": 443}.get(parts.scheme):
        return host
    return f"{host}:{parts.port}"
