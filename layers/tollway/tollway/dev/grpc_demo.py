"""The demo gRPC service of `tollway dev`: acme.catalog.v1.Catalog (infra/protos/acme/catalog).

A real grpcio server, in a sidecar process of its own like the demo HTTP services
(tollway.dev.sidecar, role "grpc"). It needs no generated code: its messages are the
dynamic classes of the descriptors the gateway compiled from infra/protos, handed over in
its spec. It serves when the stage routes a gRPC backend of a `catalog` service at a
loopback grpc:// URL and the protos declare the Catalog service.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any
from urllib.parse import urlsplit

from tollway.table.routes import CompiledConfig

SERVICE = "acme.catalog.v1.Catalog"
DEMO_GRPC_SERVICES = {"catalog": SERVICE}
ITEMS = [
    {
        "sku": "tw-100",
        "name": "Toll booth, single lane",
        "category": "HARDWARE",
        "price": {"currencyCode": "EUR", "units": "12500"},
        "stock": "3",
        "tags": ["booth", "lane"],
        "updatedAt": "2026-11-30T09:00:00Z",
    },
    {
        "sku": "tw-200",
        "name": "Transponder",
        "category": "HARDWARE",
        "price": {"currencyCode": "EUR", "units": "19", "nanos": 990000000},
        "stock": "9000000000",
        "tags": ["tag"],
        "updatedAt": "2026-12-01T12:30:00Z",
    },
    {
        "sku": "tw-300",
        "name": "Lane maintenance, per year",
        "category": "SERVICE",
        "price": {"currencyCode": "EUR", "units": "4000"},
        "updatedAt": "2026-12-02T08:15:00Z",
    },
]


def demo_grpc_spec(config: CompiledConfig) -> dict[str, Any] | None:
    """The sidecar's spec: each loopback instance of a demo gRPC service the routes call."""
    descriptors: bytes | None = None
    services: list[tuple[str, str, int]] = []
    for route in config.routes:
        for backend in route.backends:
            method = backend.grpc
            wanted = DEMO_GRPC_SERVICES.get(backend.service)
            if method is None or wanted is None or not method.name.startswith(wanted + "/"):
                continue
            descriptors = method.descriptors
            for url in backend.target.urls if backend.target is not None else ():
                parts = urlsplit(url)
                instance = (backend.service, parts.hostname or "", parts.port or 0)
                if parts.hostname in ("127.0.0.1", "localhost") and parts.port and instance not in services:
                    services.append(instance)
    if descriptors is None or not services:
        return None
    encoded = base64.b64encode(descriptors).decode()
    return {"services": services, "descriptors": encoded, "name": "demo gRPC service"}


def serve(spec: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
    """Start the Catalog service on each (name, host, port) of `spec`."""
    import grpc
    from google.protobuf import json_format, message_factory

    from tollway.table.grpc import pool_of

    pool = pool_of(base64.b64decode(spec["descriptors"]))

    def message(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"acme.catalog.v1.{name}"))

    item_class = message("Item")
    get_request, list_request = message("GetItemRequest"), message("ListItemsRequest")
    items = {item["sku"]: json_format.ParseDict(item, item_class()) for item in ITEMS}

    def get_item(request: Any, context: grpc.ServicerContext) -> Any:
        item = items.get(request.sku)
        if item is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no item with SKU {request.sku!r}")
        return item

    def list_items(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        chosen = [i for i in items.values() if request.category in (0, i.category)]
        yield from chosen[: request.page_size or None]

    handlers = {
        "GetItem": grpc.unary_unary_rpc_method_handler(
            get_item, get_request.FromString, item_class.SerializeToString
        ),
        "ListItems": grpc.unary_stream_rpc_method_handler(
            list_items, list_request.FromString, item_class.SerializeToString
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    urls = []
    for _, host, port in spec["services"]:
        bound = server.add_insecure_port(f"{host}:{port}")
        if not bound:
            raise OSError(f"port {port} is taken")
        urls.append(f"grpc://{host}:{bound}")
    server.start()
    return {"urls": urls}, lambda: server.stop(0.5).wait(2)
