"""IP allow and deny lists, matched against the source IP API Gateway reports.

The address comes from the ASGI scope's client (on Lambda: `requestContext.http.sourceIp`;
under `tollway dev`: the socket peer), never from a header a caller can write.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tollway.errors import Forbidden

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class IpPolicy:
    allow: tuple[Network, ...]  # empty: every address not denied
    deny: tuple[Network, ...]

    @classmethod
    def build(cls, allow: list[str], deny: list[str]) -> IpPolicy:
        return cls(
            tuple(ipaddress.ip_network(c, strict=False) for c in allow),
            tuple(ipaddress.ip_network(c, strict=False) for c in deny),
        )

    def check(self, client_ip: str) -> None:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            raise Forbidden("the source address is not allowed") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in net for net in self.deny) or (
            self.allow and not any(address in net for net in self.allow)
        ):
            raise Forbidden("the source address is not allowed")
