"""Where a service's instances come from, as written in gateway.yaml or `TOLLWAY_SERVICE_<NAME>`.

A service is one of:
- a URL, or a list of URLs (in YAML a list; in the environment, comma-separated): http(s)
  for HTTP services, `grpc://host:port` (plaintext) or `grpcs://host:port` (TLS) for gRPC
  services (SPEC §7), never both in one list;
- `ssm:/path/name`: an SSM parameter holding one URL or a comma-separated list;
- `cloudmap:namespace/service`: the registered instances of an AWS Cloud Map service.

Parsing is pure: `tollway routes check` validates references without calling AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

URL = re.compile(r"^https?://[^/\s?#,]+(/[^\s?#,]*)?$")
# A gRPC target names a host and a port, nothing else: the method's path is the proto's.
GRPC_URL = re.compile(r"^grpcs?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}/?$")
SSM_NAME = re.compile(r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
CLOUDMAP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Reference:
    scheme: Literal["ssm", "cloudmap"]
    name: str  # ssm: the parameter name; cloudmap: "namespace/service"

    def __str__(self) -> str:
        return f"{self.scheme}:{self.name}"


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """Static `urls`, or a `reference` whose URLs are looked up at run time."""

    urls: tuple[str, ...] = ()
    reference: Reference | None = None

    def __str__(self) -> str:
        return str(self.reference) if self.reference is not None else ",".join(self.urls)


def parse_urls(text: str | list[str]) -> tuple[str, ...]:
    """One URL, a comma-separated list or a list; trailing slashes dropped. Raises ValueError."""
    items = text.split(",") if isinstance(text, str) else text
    urls = []
    for item in items:
        url = item.strip() if isinstance(item, str) else item
        if not isinstance(url, str) or not (URL.match(url) or GRPC_URL.match(url)):
            raise ValueError(f"{url!r} is not an http(s) URL or a grpc(s)://host:port")
        urls.append(url.rstrip("/"))
    if not urls:
        raise ValueError("a list of URLs must not be empty")
    if len({is_grpc(url) for url in urls}) > 1:
        raise ValueError("a service's URLs must all be http(s) or all grpc(s)")
    if len(set(urls)) != len(urls):
        raise ValueError("a URL is listed twice")
    return tuple(urls)


def is_grpc(url: str) -> bool:
    return url.startswith(("grpc://", "grpcs://"))


def parse_target(spec: str | list[str]) -> ServiceTarget:
    """Raises ValueError with a message fit for a config problem."""
    if isinstance(spec, str):
        scheme, _, name = spec.partition(":")
        if scheme == "ssm":
            if not SSM_NAME.match(name):
                raise ValueError(f"{spec!r}: an SSM parameter name is ssm:/path/name")
            return ServiceTarget(reference=Reference("ssm", name))
        if scheme == "cloudmap":
            if not CLOUDMAP_NAME.match(name):
                raise ValueError(f"{spec!r}: a Cloud Map reference is cloudmap:namespace/service")
            return ServiceTarget(reference=Reference("cloudmap", name))
    return ServiceTarget(urls=parse_urls(spec))
