"""The sidecar processes of `tollway dev`: started, answering, failing in one line, stopped."""

from __future__ import annotations

import socket
import time

import boto3
import pytest
from tollway.dev.preflight import DevSetupError
from tollway.dev.sidecar import launch


def test_the_queues_emulator_counts_messages_as_sqs_does() -> None:
    # Its counts are cached (moto recounted the whole queue for every message sent): they
    # must still converge on the truth, as SQS's approximate counts do.
    queues = launch("emulator", {"host": "127.0.0.1", "port": 0, "serialize": False})
    try:
        url = queues.wait_ready()["url"]
        sqs = boto3.client(
            "sqs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        queue = sqs.create_queue(QueueName="counted")["QueueUrl"]
        for batch in range(5):
            entries = [{"Id": str(i), "MessageBody": f"{batch}-{i}"} for i in range(10)]
            assert len(sqs.send_message_batch(QueueUrl=queue, Entries=entries)["Successful"]) == 10
        deadline = time.monotonic() + 10
        while True:
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
            )
            count = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
            if count == 50 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert count == 50
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        assert len(got) == 10
    finally:
        queues.stop()
    assert queues.process.returncode == 0  # it ended when its stdin closed, cleanly


def test_a_sidecar_that_cannot_start_says_why_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        emulator = launch(
            "emulator", {"host": "127.0.0.1", "port": port, "name": "AWS emulator"}, name="AWS emulator"
        )
        with pytest.raises(DevSetupError) as caught:
            emulator.wait_ready()
    assert str(caught.value) == "the AWS emulator could not start: Address already in use"
    assert emulator.process.poll() is not None
