"""`ssm:` services through Powertools' SSMProvider against the moto server."""

from __future__ import annotations

from tollway.discovery.directory import build_directory
from tollway.table.targets import Reference

from tests.integration.discovery.conftest import Clock, Threads

REF = Reference("ssm", "/tollway/test/users")


def test_resolved_at_start_refreshed_after_the_ttl_and_kept_when_a_refresh_fails(clients):
    ssm = clients("ssm")
    ssm.put_parameter(Name=REF.name, Value="http://10.0.0.1:81, http://10.0.0.2:81", Type="String")
    clock, threads = Clock(), Threads()
    directory = build_directory({REF}, clients, ttl_s=30, retry_s=5, clock=clock, spawn=threads)
    assert directory.instances(REF) == ("http://10.0.0.1:81", "http://10.0.0.2:81")

    ssm.put_parameter(Name=REF.name, Value="http://10.0.0.3:81", Type="String", Overwrite=True)
    clock.now += 29
    assert directory.instances(REF) == ("http://10.0.0.1:81", "http://10.0.0.2:81")
    assert threads.join() == 0
    clock.now += 1
    # Stale: the request path gets the old value at once; the refresh runs beside it.
    assert directory.instances(REF) == ("http://10.0.0.1:81", "http://10.0.0.2:81")
    assert threads.join() == 1
    assert directory.instances(REF) == ("http://10.0.0.3:81",)

    ssm.delete_parameter(Name=REF.name)
    clock.now += 30
    directory.instances(REF)
    assert threads.join() == 1
    assert directory.instances(REF) == ("http://10.0.0.3:81",)

    # A value that is not a URL list is a failed refresh too.
    ssm.put_parameter(Name=REF.name, Value="not a url", Type="String")
    clock.now += 5
    directory.instances(REF)
    assert threads.join() == 1
    assert directory.instances(REF) == ("http://10.0.0.3:81",)


def test_a_missing_parameter_at_start_leaves_no_instances_until_it_appears(clients):
    clock, threads = Clock(), Threads()
    directory = build_directory({REF}, clients, ttl_s=30, retry_s=5, clock=clock, spawn=threads)
    assert directory.instances(REF) == ()
    clients("ssm").put_parameter(Name=REF.name, Value="http://10.0.0.9", Type="String")
    clock.now += 5
    directory.instances(REF)
    threads.join()
    assert directory.instances(REF) == ("http://10.0.0.9",)
