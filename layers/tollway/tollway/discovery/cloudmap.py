"""`cloudmap:namespace/service`: the instances AWS Cloud Map's DiscoverInstances returns.

Each instance's URL is its `url` attribute if it has one (e.g. `https://10.0.3.7:8443`),
else `http://<AWS_INSTANCE_IPV4>:<AWS_INSTANCE_PORT>` (port 80 if none), else
`http://[<AWS_INSTANCE_IPV6>]:<port>`; an instance with none of these is ignored. Healthy
instances are asked for, or all of them when none is healthy (`HEALTHY_OR_ELSE_ALL`): the
gateway's own breakers then find the ones that answer. URLs are sorted, so a refresh that
finds the same instances leaves the rotation where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.table.targets import parse_urls


def instance_url(attributes: Mapping[str, str]) -> str | None:
    if "url" in attributes:
        return parse_urls(attributes["url"])[0]
    port = attributes.get("AWS_INSTANCE_PORT", "80")
    if "AWS_INSTANCE_IPV4" in attributes:
        return f"http://{attributes['AWS_INSTANCE_IPV4']}:{port}"
    if "AWS_INSTANCE_IPV6" in attributes:
        return f"http://[{attributes['AWS_INSTANCE_IPV6']}]:{port}"
    return None


class CloudMapLookup:
    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, name: str) -> tuple[str, ...]:
        namespace, service = name.split("/")
        found = self.client.discover_instances(
            NamespaceName=namespace, ServiceName=service, HealthStatus="HEALTHY_OR_ELSE_ALL", MaxResults=1000
        )
        urls = {instance_url(i.get("Attributes", {})) for i in found["Instances"]}
        return tuple(sorted(u for u in urls if u is not None))
