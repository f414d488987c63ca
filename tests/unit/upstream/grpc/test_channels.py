"""One channel per instance and event loop (NOTES.md, "Mangum and the event loop")."""

from __future__ import annotations

import asyncio

import pytest
from tollway.upstream.grpc.channels import Channels, target_of

from tests.grpc_backends import ThingsServer, thing


def test_a_channel_serves_its_loop_and_a_new_loop_gets_its_own() -> None:
    things = ThingsServer().start()
    channels = Channels()

    async def call() -> tuple[object, bytes]:
        channel = channels.get(things.url)
        reply = await channel.unary_unary("/tollway.test.v1.Things/Create")(thing(id="a"), timeout=2)
        return channel, reply

    async def twice() -> tuple[object, object]:
        first, _ = await call()
        second, reply = await call()
        assert reply == thing(id="a")
        return first, second

    try:
        first, second = asyncio.run(twice())
        assert first is second  # reused on its loop
        # The first loop is closed now: a call from a new loop must not use its channel.
        third, reply = asyncio.run(call())
        assert third is not first and reply == thing(id="a")
    finally:
        things.stop()


@pytest.mark.parametrize(
    "url, target",
    [
        ("grpc://127.0.0.1:9105", ("127.0.0.1:9105", False)),
        ("grpcs://catalog.internal:443", ("catalog.internal:443", True)),
        ("grpc://[::1]:50051", ("[::1]:50051", False)),
    ],
)
def test_targets(url: str, target: tuple[str, bool]) -> None:
    assert target_of(url) == target


def test_an_http_url_is_no_grpc_target() -> None:
    with pytest.raises(ValueError):
        target_of("http://127.0.0.1:9101")
