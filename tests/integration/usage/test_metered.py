"""A token-metered route end to end: the repo's infra (infra/routes/assistants.yaml), the app
as build_app wires it (API keys, quota and usage queue in the moto server), under uvicorn,
in front of the demo chat-completions backend (JSON and SSE), the usage function fed from the
queue, then `tollway usage report` and `tollway usage reconcile`.

The route: units = prompt_tokens + 3 x completion_tokens, reservation 3 x max_tokens + 100
(1000 without max_tokens). The demo backend counts prompt tokens as the messages' words and
answers at most `max_tokens` words of a 12-word reply.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from tollway import cli
from tollway.assemble import build_app
from tollway.auth.keys import key_hash
from tollway.auth.store import ACTIVE, KeyRecord
from tollway.dev.backends import DEMO_SERVICES
from tollway.dev.sqs_poller import start_poller
from tollway.functions.usage import build_handler
from tollway.settings import Settings
from tollway.tools.keystore import KeyStore

from tests.backends import read_body
from tests.conftest import INFRA
from tests.issued import new_key

from .conftest import queue_depth, wait_for

SEVEN_WORDS = [{"role": "user", "content": "how do token budgets work in gateways"}]


class Seen:
    """The demo backend, recording what it receives (the boundary is the product)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body:
            self.bodies.append(orjson.loads(body))
            self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        replayed = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def again():
            return next(replayed)

        await DEMO_SERVICES["assistants"](scope, again, send)


def _key(env: dict[str, str], consumer: str, plan: str) -> str:
    import boto3

    key, key_id = new_key()
    record = KeyRecord(
        key_hash=key_hash(key),
        key_id=key_id,
        consumer=consumer,
        plan=plan,
        scopes=("chat:write",),
        status=ACTIVE,
        created_at=datetime.now(UTC).isoformat(),
    )
    KeyStore(boto3.client("dynamodb"), env["TOLLWAY_KEYS_TABLE"]).put(record)
    return key


def _used(env: dict[str, str], consumer: str) -> int:
    import boto3

    items = boto3.client("dynamodb").scan(TableName=env["TOLLWAY_QUOTA_TABLE"])["Items"]
    return sum(int(i["used"]["N"]) for i in items if i["pk"]["S"].endswith("#" + consumer))


def _infra(tmp_path: Path, quota: int) -> Path:
    """The repo's infra, with the `tokens` plan's daily budget set to `quota`."""
    import shutil

    import yaml

    folder = tmp_path / "infra"
    shutil.copytree(INFRA, folder)
    plans = yaml.safe_load((folder / "plans.yaml").read_text())
    plans["plans"]["tokens"]["quota"]["limit"] = quota
    plans["plans"]["tokens"]["rate"] = {"limit": 1000, "per": "second"}
    (folder / "plans.yaml").write_text(yaml.safe_dump(plans))
    return folder


@pytest.fixture
def gateway(aws, serve, tmp_path, monkeypatch, cleanup):
    monkeypatch.chdir(tmp_path)
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    seen = Seen()
    env = {**os.environ, **aws, "TOLLWAY_SERVICE_ASSISTANTS": serve(seen)}
    # 7 prompt tokens + 3 x 12 completion tokens = 43 units per full answer.
    infra = _infra(tmp_path, quota=200)
    settings = Settings.from_environ(env, infra)
    app = build_app(settings)
    key = _key(aws, "alice", "tokens")
    url = serve(app)
    return url, seen, settings, app, key


def _drain(settings: Settings, app, cleanup) -> None:
    import boto3

    queue = settings.usage_queue_url
    wait_for(lambda: app.gateway.admission.settlements.pending() == 0, what="settled")
    wait_for(lambda: app.gateway.usage.pending() == 0, what="emitter flushed")
    sqs = boto3.client("sqs")
    cleanup.append(start_poller(queue, build_handler(settings), sqs, retry_visibility_s=0))
    wait_for(lambda: queue_depth(sqs, queue) == 0, what="queue drained")


def chat(
    http: httpx.Client, key: str, *, max_tokens: int | None = None, stream: bool = False
) -> httpx.Response:
    body: dict = {"model": "demo", "messages": SEVEN_WORDS, "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return http.post("/v1/chat/completions", json=body, headers={"x-api-key": key})


def test_token_budget_enforced_and_billed_exactly_json_and_sse(gateway, aws, cleanup, capsys) -> None:
    url, seen, settings, app, key = gateway
    with httpx.Client(base_url=url, timeout=10) as http:
        first = chat(http, key, max_tokens=20)  # reserves 160, costs 7 + 36 = 43
        assert first.status_code == 200, first.text
        assert first.json()["usage"] == {"prompt_tokens": 7, "completion_tokens": 12, "total_tokens": 19}
        # RateLimit counts the token budget: 200 - the answer's 43 (the reservation was 160).
        assert '"quota";q=200;' in first.headers["ratelimit-policy"]
        assert '"quota";r=157;' in first.headers["ratelimit"]
        wait_for(lambda: _used(aws, "alice") == 43, what="the first answer settled")

        streamed = chat(http, key, max_tokens=5, stream=True)  # reserves 115, costs 7 + 15 = 22
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.text.endswith("data: [DONE]\n\n")
        # A stream's head leaves before its usage: RateLimit there is after the reservation (115).
        assert '"quota";r=42;' in streamed.headers["ratelimit"]
        wait_for(lambda: _used(aws, "alice") == 65, what="the stream settled")

        # 65 used: a reservation of 160 does not fit the 200 budget -> refused before the backend.
        calls = len(seen.bodies)
        refused = chat(http, key, max_tokens=20)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["violated-policies"] == ["quota"]
        assert len(seen.bodies) == calls  # never reached the backend

        small = chat(http, key, max_tokens=2)  # reserves 106, fits 135 left; costs 7 + 6 = 13
        assert small.status_code == 200
        wait_for(lambda: _used(aws, "alice") == 78, what="the small answer settled")

    # The backend received the request as sent, and no API key.
    assert seen.bodies[0]["max_tokens"] == 20 and seen.bodies[1]["stream"] is True
    assert all("x-api-key" not in h for h in seen.headers)

    _drain(settings, app, cleanup)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    capsys.readouterr()
    assert cli.main(["usage", "report", "--consumer", "alice", "--period", day, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["requests"], report["rejected"], report["units"]) == (3, 1, 78)
    assert report["routes"] == {"chat.completions": {"requests": 3, "units": 78}}
    # 78 units at 0.002 per 1000.
    assert report["amount_due"] == "0.000156"
    assert cli.main(["usage", "reconcile", "--period", day, "--consumer", "alice", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["consumers"]
    assert rows == [
        {"consumer": "alice", "quota_units": 78, "billed_units": 78, "difference": 0, "unattributed_units": 0}
    ]


def test_on_lambda_the_settle_runs_in_the_extension_window_json_and_buffered_sse(
    aws, serve, tmp_path, monkeypatch
) -> None:
    """Through functions/router/app.py's pieces: Mangum (buffered answers, as API Gateway's
    HTTP API needs them), and the extension flushing settles and events after each return."""
    from tollway.functions import extension
    from tollway.functions.http_api import lambda_handler
    from tollway.functions.router import after_response

    from tests.lambda_router import Context

    from .test_extension import FakeExtensionsApi, invoke_event

    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    env = {**os.environ, **aws, "TOLLWAY_SERVICE_ASSISTANTS": serve(Seen())}
    app = build_app(Settings.from_environ(env, _infra(tmp_path, quota=1000)))
    key = _key(aws, "bob", "tokens")
    api = FakeExtensionsApi(lambda: _used(aws, "bob"))  # notes `used` at each next-event call
    inner = lambda_handler(app)
    at_return: list[int] = []

    def router(event, context):
        result = inner(event, context)
        at_return.append(_used(aws, "bob"))
        return result

    handler = extension.attach(router, after_response(app), runtime_api=serve(api).removeprefix("http://"))
    wait_for(lambda: len(api.next_calls) == 1, what="first next")
    event = json.loads((Path(__file__).parents[2] / "events" / "http_api_v2_chat_post.json").read_text())
    event["headers"]["x-api-key"] = key

    api.events.put(invoke_event())
    result = handler(event, Context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["usage"]["completion_tokens"] == 12
    wait_for(lambda: len(api.next_calls) == 2, what="next event requested")
    # At return the counter held the reservation (3 x 20 + 100); before the next event, the cost.
    assert at_return == [160]
    assert api.next_calls[-1] == ("ext-1", 43)

    streamed = json.loads(event["body"]) | {"stream": True, "max_tokens": 5}
    event["body"] = json.dumps(streamed)
    api.events.put(invoke_event())
    result = handler(event, Context())
    assert result["statusCode"] == 200
    assert result["headers"]["content-type"].startswith("text/event-stream")
    assert result["body"].endswith("data: [DONE]\n\n")  # buffered whole: HTTP API does not stream
    wait_for(lambda: len(api.next_calls) == 3, what="next event requested")
    assert at_return[-1] == 43 + 115
    assert api.next_calls[-1] == ("ext-1", 43 + 22)
    api.events.put({"eventType": "SHUTDOWN"})


class HeldStream:
    """An SSE backend that sends one chunk, then holds the rest until `release` is set."""

    def __init__(self, final: bytes) -> None:
        import threading

        self.release = threading.Event()
        self.final = final

    async def __call__(self, scope, receive, send) -> None:
        import asyncio

        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        head = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        first = b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
        await send({"type": "http.response.body", "body": first, "more_body": True})
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": self.final})


def _held_gateway(aws, serve, tmp_path, final: bytes):
    held = HeldStream(final)
    env = {**os.environ, **aws, "TOLLWAY_SERVICE_ASSISTANTS": serve(held)}
    app = build_app(Settings.from_environ(env, _infra(tmp_path, quota=1000)))
    key = _key(aws, "carol", "tokens")
    return serve(app), held, key


def test_an_event_stream_reaches_the_caller_as_it_passes_and_is_charged_at_its_end(
    aws, serve, tmp_path, monkeypatch
) -> None:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    final = (
        b'data: {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 4}}\n\ndata: [DONE]\n\n'
    )
    url, held, key = _held_gateway(aws, serve, tmp_path, final)
    body = {"messages": SEVEN_WORDS, "max_tokens": 50, "stream": True}
    with (
        httpx.Client(base_url=url, timeout=10) as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers={"x-api-key": key}) as answer,
    ):
        assert answer.status_code == 200
        assert "content-length" not in answer.headers
        chunks = answer.iter_raw()
        first = next(chunks)  # arrives while the backend still holds the rest
        assert first.startswith(b"data: ") and not held.release.is_set()
        assert _used(aws, "carol") == 250  # the reservation: 3 x 50 + 100
        held.release.set()
        rest = b"".join(chunks)
    assert (first + rest).endswith(b"data: [DONE]\n\n")
    wait_for(lambda: _used(aws, "carol") == 30 + 12, what="the stream's cost settled")


@pytest.mark.parametrize(
    ("final", "charged"),
    [
        (b"data: [DONE]\n\n", 250),  # no usage chunk: the reservation (3 x 50 + 100) is kept
        (b'data: {"usage": {"prompt_tokens": "lots", "completion_tokens": 1}}\n\n', 250),  # malformed
        (b'data: {"usage": {"completion_tokens": 2}}\n\n', 6),  # prompt tokens absent: 0 of them
    ],
    ids=["missing", "malformed", "partial"],
)
def test_a_stream_without_usable_usage_is_charged_the_default(
    aws, serve, tmp_path, monkeypatch, final: bytes, charged: int
) -> None:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    url, held, key = _held_gateway(aws, serve, tmp_path, final)
    held.release.set()
    body = {"messages": SEVEN_WORDS, "max_tokens": 50, "stream": True}
    with httpx.Client(base_url=url, timeout=10) as http:
        answer = http.post("/v1/chat/completions", json=body, headers={"x-api-key": key})
    assert answer.status_code == 200
    wait_for(lambda: _used(aws, "carol") == charged, what="the stream settled")


def test_a_huge_max_tokens_is_refused_for_quota_never_taken_for_a_store_failure(
    aws, serve, tmp_path, monkeypatch
) -> None:
    """max_tokens 1e300 would be a number DynamoDB refuses (38 digits at most); had that
    passed for an unavailable store, the route would answer 503, or with `quota_failure: open`
    admit the request uncounted. Reservations are capped: a quota refuses it (429), a plan
    without a quota admits and counts it."""
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    seen = Seen()
    infra = _infra(tmp_path, quota=1000)
    plans = infra / "plans.yaml"
    plans.write_text(plans.read_text() + "  rateonly: {rate: {limit: 100, per: second}}\n")
    app = build_app(
        Settings.from_environ({**os.environ, **aws, "TOLLWAY_SERVICE_ASSISTANTS": serve(seen)}, infra)
    )
    capped, uncapped = _key(aws, "mallory", "tokens"), _key(aws, "trent", "rateonly")
    body = b'{"messages": [], "max_tokens": 1e300}'
    with httpx.Client(base_url=serve(app), timeout=10) as http:
        for key in (capped, uncapped):
            answers = [
                http.post(
                    "/v1/chat/completions",
                    content=body,
                    headers={"x-api-key": key, "content-type": "application/json"},
                )
                for _ in range(2)
            ]
            if key == capped:
                assert [a.status_code for a in answers] == [429, 429]
                assert "reserves 1000000000000000 units" in answers[0].json()["detail"]
                assert seen.bodies == []
            else:
                assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert _used(aws, "mallory") == 0
    wait_for(lambda: _used(aws, "trent") == 2 * 36, what="both settled")  # 12 words x 3, no prompt


def test_a_composed_route_is_metered_from_the_composed_answer(aws, serve, tmp_path, monkeypatch) -> None:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    infra = _infra(tmp_path, quota=1000)
    (infra / "routes" / "assistants.yaml").write_text(
        """\
team: assistants
routes:
  - id: chat.grouped
    path: /v1/chat/grouped
    methods: [POST]
    auth: [api_key]
    scopes: [chat:write]
    compose: group
    metering: {units: chat.usage.total_tokens, reserve: 100}
    backends:
      - {name: chat, service: assistants, path: /v1/chat/completions}
      - {name: status, service: users, path: /health, method: GET, required: false}
"""
    )
    env = {
        **os.environ,
        **aws,
        "TOLLWAY_SERVICE_ASSISTANTS": serve(Seen()),
        "TOLLWAY_SERVICE_USERS": serve(Seen()),
    }
    app = build_app(Settings.from_environ(env, infra))
    key = _key(aws, "dave", "tokens")
    with httpx.Client(base_url=serve(app), timeout=10) as http:
        answer = http.post(
            "/v1/chat/grouped", json={"messages": SEVEN_WORDS, "max_tokens": 3}, headers={"x-api-key": key}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["chat"]["usage"]["total_tokens"] == 10
    wait_for(lambda: _used(aws, "dave") == 10, what="settled to the composed answer's usage")
