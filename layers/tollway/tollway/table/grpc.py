"""A gRPC backend's method in the route table, with the descriptors that define its messages.

The descriptors are the serialized FileDescriptorSet of `infra/protos` that the build
compiled (tollway/config/protos.py), so the function builds its message classes from them
(`tollway.upstream.grpc.codec`) and never runs protoc. Nothing here imports protobuf at
module level: a table without gRPC routes never loads it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class GrpcMethod:
    """One unary or server-streaming method, with the descriptors that define its messages."""

    name: str  # "acme.catalog.v1.Catalog/GetItem"
    request: str  # the request message's full name
    response: str  # the reply message's full name
    server_streaming: bool
    descriptors: bytes = field(repr=False)  # the serialized FileDescriptorSet of infra/protos

    @property
    def path(self) -> str:
        """The HTTP/2 path a call goes to: /<package>.<Service>/<Method>."""
        return "/" + self.name


@functools.lru_cache(maxsize=8)
def pool_of(descriptors: bytes) -> Any:
    """A protobuf DescriptorPool of the FileDescriptorSet (its own pool: never the default
    one, whose names a deployment's protos could clash with)."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptors).file:
        pool.Add(file)
    return pool
