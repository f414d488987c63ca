"""gRPC services behind JSON routes (SPEC §7): protocol translation, as Envoy's gRPC-JSON
transcoder and Kong's grpc-gateway do it.

    translate.py  the request message from the caller's JSON or the `body` template, the
                  answer as proto3 JSON (or a JSON array, or Server-Sent Events for a
                  server stream), status codes as problems
    codec.py      JSON <-> messages, from the descriptors the route table carries
    caller.py     one call: instances, breakers, grpc-timeout from the deadline, retries
    channels.py   one grpc.aio channel per instance, on the running event loop
    metadata.py   the HTTP backend headers, as gRPC metadata
    status.py     the status table

Imported only when the route table has a gRPC backend (tollway/upstream/dispatch.py): a
deployment without one never loads grpc or protobuf.
"""

from tollway.upstream.grpc.translate import GrpcUpstream

__all__ = ["GrpcUpstream"]
