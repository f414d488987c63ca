"""`cloudmap:` services through boto3's DiscoverInstances against the moto server."""

from __future__ import annotations

from tollway.discovery.directory import build_directory
from tollway.table.targets import Reference

from tests.integration.discovery.conftest import Clock, Threads, register

REF = Reference("cloudmap", "tollway.test/orders")


def test_instances_are_discovered_refreshed_and_kept_when_a_refresh_fails(clients):
    cloudmap = clients("servicediscovery")
    service_id = register(
        cloudmap,
        "tollway.test",
        "orders",
        {
            "b": {"AWS_INSTANCE_IPV4": "10.0.0.2", "AWS_INSTANCE_PORT": "8080"},
            "a": {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "8080"},
            "c": {"url": "https://orders-c.internal:8443"},
        },
    )
    clock, threads = Clock(), Threads()
    directory = build_directory({REF}, clients, ttl_s=30, retry_s=5, clock=clock, spawn=threads)
    before = ("http://10.0.0.1:8080", "http://10.0.0.2:8080", "https://orders-c.internal:8443")
    assert directory.instances(REF) == before

    cloudmap.deregister_instance(ServiceId=service_id, InstanceId="c")
    clock.now += 30
    assert directory.instances(REF) == before
    assert threads.join() == 1
    assert directory.instances(REF) == before[:2]

    # Every instance gone (an empty answer) is a failed refresh: the last good list stays.
    for instance_id in ("a", "b"):
        cloudmap.deregister_instance(ServiceId=service_id, InstanceId=instance_id)
    clock.now += 30
    directory.instances(REF)
    assert threads.join() == 1
    assert directory.instances(REF) == before[:2]

    # So is a service that no longer exists.
    cloudmap.delete_service(Id=service_id)
    clock.now += 5
    directory.instances(REF)
    assert threads.join() == 1
    assert directory.instances(REF) == before[:2]
