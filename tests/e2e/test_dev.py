"""`make dev`'s server, end to end: the README's requests against a real `tollway dev`."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import DevServer


def test_public_route_is_proxied_to_a_demo_backend(dev_server: DevServer) -> None:
    response = httpx.get(f"{dev_server.url}/v1/status")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


def test_dev_env_points_other_commands_at_the_emulator(dev_server: DevServer) -> None:
    env = dev_server.env()
    assert env["AWS_ENDPOINT_URL"] == dev_server.aws_url
    assert env["TOLLWAY_KEYS_TABLE"] == "KeysTable"
    assert env["TOLLWAY_USAGE_QUEUE_URL"].endswith("/UsageQueue")



def test_errors_are_problems(dev_server: DevServer) -> None:
    response = httpx.get(f"{dev_server.url}/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
