"""A loopback stand-in for SQS's SendMessageBatch (JSON protocol) that keeps nothing.

The moto server's SQS slows down as its queue grows (tens of ms per call here), which
would make the bench time the emulator. The measures that flush usage after every
invocation send to this sink instead: the gateway's side of the call, the CPU that is
measured, is the same botocore call either way.
"""

from __future__ import annotations

import hashlib
import uuid

import orjson

from tests.backends import read_body

JSON = [(b"content-type", b"application/x-amz-json-1.0")]


async def sqs_sink(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    target = dict(scope["headers"]).get(b"x-amz-target", b"").decode()
    if target == "AmazonSQS.SendMessageBatch":
        entries = orjson.loads(body)["Entries"]
        successful = [
            {
                "Id": e["Id"],
                "MessageId": str(uuid.uuid4()),
                "MD5OfMessageBody": hashlib.md5(e["MessageBody"].encode()).hexdigest(),  # noqa: S324
            }
            for e in entries
        ]
        status, payload = 200, {"Successful": successful, "Failed": []}
    else:
        status, payload = (
            400,
            {"__type": "com.amazon.coral.service#UnknownOperationException", "message": target},
        )
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})
