"""Discovery against the moto server: SSM parameters and Cloud Map instances made per test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config


@pytest.fixture
def clients(aws: dict[str, str], moto_url: str) -> Callable[[str], Any]:
    """`clients(service)`: a boto3 client of the clean emulator, as `tollway.aws.client` makes."""

    def make(service: str) -> Any:
        # DiscoverInstances goes to `data-servicediscovery.<region>...` on AWS; an emulator
        # on an IP address has no such host name.
        return boto3.client(service, endpoint_url=moto_url, config=Config(inject_host_prefix=False))

    return make


def register(cloudmap: Any, namespace: str, service: str, instances: dict[str, dict[str, str]]) -> str:
    """Creates the namespace and service, registers `instances` (id -> attributes); the service id."""
    cloudmap.create_http_namespace(Name=namespace)
    ns = next(n for n in cloudmap.list_namespaces()["Namespaces"] if n["Name"] == namespace)
    service_id = cloudmap.create_service(Name=service, NamespaceId=ns["Id"])["Service"]["Id"]
    for instance_id, attributes in instances.items():
        cloudmap.register_instance(ServiceId=service_id, InstanceId=instance_id, Attributes=attributes)
    return service_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Threads:
    """Runs background refreshes in real threads, and lets a test wait for them."""

    def __init__(self) -> None:
        self.started: list[threading.Thread] = []

    def __call__(self, work: Callable[[], None]) -> None:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self.started.append(thread)

    def join(self) -> int:
        for thread in self.started:
            thread.join(10)
        count, self.started = len(self.started), []
        return count


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
