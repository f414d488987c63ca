"""`make dev`'s server, end to end: the README's requests against a real `tollway dev`."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.conftest import ROOT, DevServer


def test_public_route_is_proxied_to_a_demo_backend(dev_server: DevServer) -> None:
    response = httpx.get(f"{dev_server.url}/v1/status")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


def test_the_template_next_to_the_infra_folder_is_used(dev_server: DevServer) -> None:
    assert f"tollway dev: tables and queues from {ROOT / 'template.yaml'}\n" in dev_server.output


def test_the_gateway_runs_alone_in_its_process(dev_server: DevServer) -> None:
    # The emulators, the demo backends, the demo gRPC service and the usage function each run
    # in a process of their own.
    from tests.e2e.conftest import children

    roles = sorted(
        Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[3].decode()
        for pid in children(dev_server.process.pid)
    )
    assert roles == ["backends", "emulator", "emulator", "grpc", "usage"]


def test_dev_env_points_other_commands_at_the_emulator(dev_server: DevServer) -> None:
    env = dev_server.env()
    assert env["AWS_ENDPOINT_URL"] == dev_server.aws_url
    assert env["AWS_ENDPOINT_URL_SQS"].startswith("http://127.0.0.1:")
    assert env["TOLLWAY_KEYS_TABLE"] == "KeysTable"
    assert env["TOLLWAY_USAGE_QUEUE_URL"].endswith("/UsageQueue")


def test_errors_are_problems(dev_server: DevServer) -> None:
    response = httpx.get(f"{dev_server.url}/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_demo_key_reaches_a_protected_route(dev_server: DevServer) -> None:
    response = httpx.get(f"{dev_server.url}/v1/users/1", headers={"x-api-key": "demo-key"})
    assert response.status_code == 200
    assert response.json()["name"] == "Ada Lovelace"
    assert "ratelimit" in response.headers


def test_composed_route(dev_server: DevServer) -> None:
    response = httpx.get(f"{dev_server.url}/v1/profile/1", headers={"x-api-key": "demo-key"})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": "1", "full_name": "Ada Lovelace"}
    assert [o["id"] for o in body["orders"]["orders"]] == ["o-100", "o-101"]
    assert body["reviews"]["reviews"][0]["stars"] == 5


def test_grpc_demo_route_translates_json_to_grpc(dev_server: DevServer) -> None:
    # README "gRPC services": the demo catalog is a real grpcio server behind JSON routes.
    key = {"x-api-key": "demo-key"}
    item = httpx.get(f"{dev_server.url}/v1/items/tw-200", headers=key)
    assert item.status_code == 200
    assert item.json() == {
        "sku": "tw-200",
        "name": "Transponder",
        "category": "HARDWARE",
        "price": {"currencyCode": "EUR", "units": "19", "nanos": 990000000},
        "stock": "9000000000",
        "tags": ["tag"],
        "updatedAt": "2026-12-01T12:30:00Z",
    }
    missing = httpx.get(f"{dev_server.url}/v1/items/nope", headers=key)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no item with SKU 'nope'"
    listing = httpx.get(f"{dev_server.url}/v1/items", headers=key)
    assert [i["sku"] for i in listing.json()] == ["tw-100", "tw-200", "tw-300"]
    events = httpx.get(f"{dev_server.url}/v1/items", headers={**key, "accept": "text/event-stream"})
    assert events.headers["content-type"] == "text/event-stream"
    assert events.text.count("data: ") == 3 and events.text.startswith('data: {"sku":"tw-100"')


def test_a_key_created_from_a_second_terminal_works(dev_server: DevServer) -> None:
    import json

    created = dev_server.tollway(
        "keys",
        "create",
        "--consumer",
        "e2e",
        "--plan",
        "pro",
        "--scopes",
        "users:read",
        "--json",
        "--infra",
        str(ROOT / "infra"),
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    ok = httpx.get(f"{dev_server.url}/v1/users/2", headers={"authorization": f"Bearer {key}"})
    assert ok.status_code == 200
    denied = httpx.get(f"{dev_server.url}/v1/profile/2", headers={"x-api-key": key})
    assert denied.status_code == 403  # the key lacks profile:read
    # An authenticated answer states the plan even when the quota step was never reached.
    # (w of a monthly quota is this month's length in seconds.)
    assert denied.headers["ratelimit-policy"].startswith('"rate";q=100;w=1, "quota";q=1000000;w=')
    assert httpx.get(f"{dev_server.url}/v1/users/2", headers={"x-api-key": key + "x"}).status_code == 401


def test_usage_reaches_the_billing_report_exactly_once(dev_server: DevServer) -> None:
    import json
    import time
    from datetime import UTC, datetime

    created = dev_server.tollway(
        "keys",
        "create",
        "--consumer",
        "e2e-billing",
        "--plan",
        "pro",
        "--scopes",
        "users:read",
        "--json",
        "--infra",
        str(ROOT / "infra"),
    )
    key = json.loads(created.stdout)["key"]
    n = 12
    for i in range(n):
        assert (
            httpx.get(f"{dev_server.url}/v1/users/{1 + i % 2}", headers={"x-api-key": key}).status_code == 200
        )
    denied = httpx.get(f"{dev_server.url}/v1/profile/1", headers={"x-api-key": key})
    assert denied.status_code == 403
    month = datetime.now(UTC).strftime("%Y-%m")
    deadline = time.monotonic() + 30
    report: dict = {}
    while time.monotonic() < deadline:
        # The events travel: emitter -> emulated SQS -> poller -> usage function -> UsageTable.
        done = dev_server.tollway("usage", "report", "--consumer", "e2e-billing", "--period", month, "--json")
        if done.returncode == 0:
            report = json.loads(done.stdout)
            if report.get("requests") == n and report.get("rejected") == 1:
                break
        time.sleep(0.5)
    assert report["requests"] == n and report["rejected"] == 1, report
    assert report["units"] == n and report["plan"] == "pro"
    assert report["amount_due"] == "0.006"  # 12 units at 0.50 per 1,000
    # The refused request reached profile.get: it is listed, with nothing admitted there.
    assert report["routes"] == {
        "users.get": {"requests": n, "units": n},
        "profile.get": {"requests": 0, "units": 0},
    }


def test_no_sidecar_outlives_a_killed_dev_server(tmp_path: Path) -> None:
    # SIGKILL gives `tollway dev` no chance to stop anything: each sidecar ends when its
    # stdin (a pipe from the dead parent) closes.
    import signal

    from tests.e2e.conftest import alive, children, launch_dev

    server = launch_dev(tmp_path)
    sidecars = children(server.process.pid)
    assert len(sidecars) == 5  # two emulators, the demo backends, the demo gRPC service, usage
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    assert not alive(sidecars, within_s=10), f"orphans: {alive(sidecars)}"


def test_token_metered_demo_route_is_enforced_and_billed_exactly(dev_server: DevServer) -> None:
    """The demo chat-completions backend behind `POST /v1/chat/completions` (README, docs/metering.md):
    JSON and SSE, charged prompt + 3 x completion tokens, reported and reconciled to the unit."""
    import json
    import time
    from datetime import UTC, datetime

    created = dev_server.tollway(
        "keys", "create", "--consumer", "e2e-tokens", "--plan", "tokens", "--scopes", "chat:write", "--json",
        "--infra", str(ROOT / "infra"),
    )  # fmt: skip
    headers = {"x-api-key": json.loads(created.stdout)["key"]}
    url = f"{dev_server.url}/v1/chat/completions"
    prompt = [{"role": "user", "content": "two words"}]
    answer = httpx.post(url, json={"messages": prompt, "max_tokens": 4}, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert '"quota";r=19986;' in answer.headers["ratelimit"]  # 20,000 - (2 + 3 x 4)
    with httpx.stream("POST", url, json={"messages": prompt, "stream": True}, headers=headers) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        text = b"".join(streamed.iter_raw()).decode()
    assert '"usage":{"prompt_tokens":2,"completion_tokens":12' in text and text.endswith("data: [DONE]\n\n")
    # A reservation over the budget is refused before the backend: max_tokens 7,000 reserves 21,100.
    refused = httpx.post(url, json={"messages": prompt, "max_tokens": 7000}, headers=headers)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1

    day = datetime.now(UTC).strftime("%Y-%m-%d")
    expected = (2 + 12) + (2 + 36)
    deadline = time.monotonic() + 30
    report: dict = {}
    while time.monotonic() < deadline:
        done = dev_server.tollway("usage", "report", "--consumer", "e2e-tokens", "--period", day, "--json")
        if done.returncode == 0:
            report = json.loads(done.stdout)
            if report.get("requests") == 2 and report.get("rejected") == 1:
                break
        time.sleep(0.5)
    assert (report["requests"], report["rejected"], report["units"]) == (2, 1, expected), report
    reconciled = dev_server.tollway(
        "usage", "reconcile", "--period", day, "--consumer", "e2e-tokens", "--json"
    )
    assert reconciled.returncode == 0, reconciled.stdout
    assert json.loads(reconciled.stdout)["consumers"] == [
        {
            "consumer": "e2e-tokens",
            "quota_units": expected,
            "billed_units": expected,
            "difference": 0,
            "unattributed_units": 0,
        }
    ]
