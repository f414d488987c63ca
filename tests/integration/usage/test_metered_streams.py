"""A stream is paid for even when it does not say its usage (issue 18, item 4).

Through the app as build_app wires it (API keys, quota and usage queue in the moto server),
under uvicorn, in front of a real loopback SSE backend (tests/meter.py's `Scripted`): the
repo's chat route (units = prompt_tokens + 3 x completion_tokens, reservation 3 x max_tokens
+ 100), with a short deadline. docs/metering.md, "What is charged": a successful answer that
does not say its usage pays the route's `missing`, by default its reservation (kept, not
refunded); a stream cut before its end pays at least that.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tollway.assemble import build_app
from tollway.settings import Settings

from tests.meter import Scripted, Tee, settled

from .test_metered import _infra, _key, _used

# 50 tokens asked for: 3 x 50 + 100 reserved.
RESERVED = 250
USAGE = {"prompt_tokens": 7, "completion_tokens": 30}  # 7 + 3 x 30 = 97


def _gateway(aws, serve, tmp_path: Path, monkeypatch, **metering) -> tuple[str, Scripted, Tee, Any, str, str]:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    infra = _infra(tmp_path, quota=10_000)
    routes = infra / "routes" / "assistants.yaml"
    team = yaml.safe_load(routes.read_text())
    route = team["routes"][0]
    route["timeout_ms"] = route["backends"][0]["timeout_ms"] = 800
    route["metering"].update(metering)
    routes.write_text(yaml.safe_dump(team))
    backend = Scripted()
    env = {**os.environ, **aws, "TOLLWAY_SERVICE_ASSISTANTS": serve(backend)}
    app = build_app(Settings.from_environ(env, infra))
    tee = app.gateway.usage = Tee(app.gateway.usage)
    consumer = f"carol-{os.urandom(4).hex()}"
    return serve(app), backend, tee, app, _key(aws, consumer, "tokens"), consumer


def _stream(url: str, key: str, reply: dict, **more) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50, "stream": True, "reply": reply}
    with httpx.Client(base_url=url, timeout=10) as http:
        return http.post("/v1/chat/completions", json=body | more, headers={"x-api-key": key})


def test_a_stream_cut_at_the_deadline_before_its_usage_keeps_its_reservation(
    aws, serve, tmp_path, monkeypatch
) -> None:
    url, backend, tee, app, key, consumer = _gateway(aws, serve, tmp_path, monkeypatch)
    answer = _stream(url, key, {"stream": True, "words": 30, "usage": USAGE, "end": "hold", "hold_s": 3})
    assert answer.status_code == 200
    assert answer.text.count('"content"') == 30 and "[DONE]" not in answer.text  # cut at 800 ms
    settled(app)
    (event,) = tee.of(consumer)
    charged = (event["cost_units"], event["reserved_units"], event["usage_status"])
    assert charged == (RESERVED, RESERVED, "missing")
    assert _used(aws, consumer) == RESERVED  # never 0 tokens for 30 delivered


def test_a_stream_from_a_backend_that_reports_usage_only_when_asked(
    aws, serve, tmp_path, monkeypatch
) -> None:
    """OpenAI sends a stream's usage chunk only with `stream_options.include_usage`."""
    url, backend, tee, app, key, consumer = _gateway(aws, serve, tmp_path, monkeypatch)
    reply = {"stream": True, "words": 30, "usage": USAGE, "include_usage_only": True}
    unasked = _stream(url, key, reply)
    asked = _stream(url, key, reply, stream_options={"include_usage": True})
    assert unasked.status_code == asked.status_code == 200
    assert unasked.text.endswith("data: [DONE]\n\n") and '"usage"' not in unasked.text
    settled(app)
    assert [e["cost_units"] for e in tee.of(consumer)] == [RESERVED, 7 + 3 * 30]
    assert [e["usage_status"] for e in tee.of(consumer)] == ["missing", "read"]
    assert _used(aws, consumer) == RESERVED + 97
    # The caller's request reached the backend as sent: the gateway does not add stream_options.
    assert "stream_options" not in backend.bodies[0]


@pytest.mark.parametrize(("said", "charged"), [(30, RESERVED), (400, 400)], ids=["said-less", "said-more"])
def test_a_stream_broken_after_part_of_its_usage_pays_at_least_its_reservation(
    aws, serve, tmp_path, monkeypatch, said: int, charged: int
) -> None:
    """Anthropic-style usage comes in parts (input tokens first); a stream whose connection
    breaks after the first part has said too little: it pays the more of the two."""
    url, backend, tee, app, key, consumer = _gateway(aws, serve, tmp_path, monkeypatch)
    early = {"usage": {"prompt_tokens": said}, "usage_at": "start"}
    reply = {"stream": True, "words": 30, **early, "end": "drop"}
    answer = _stream(url, key, reply)
    assert answer.status_code == 200 and answer.text.count('"content"') == 30
    settled(app)
    (event,) = tee.of(consumer)
    assert (event["cost_units"], event["usage_status"]) == (charged, "read")
    assert _used(aws, consumer) == charged


def test_a_route_that_states_missing_is_charged_that(aws, serve, tmp_path, monkeypatch) -> None:
    url, backend, tee, app, key, consumer = _gateway(aws, serve, tmp_path, monkeypatch, missing=12)
    cut = _stream(url, key, {"stream": True, "words": 30, "end": "hold", "hold_s": 3})
    plain = _stream(url, key, {}, stream=False)  # a JSON answer without usage
    full = _stream(url, key, {"stream": True, "words": 30, "usage": USAGE})
    assert cut.status_code == plain.status_code == full.status_code == 200
    settled(app)
    assert [e["cost_units"] for e in tee.of(consumer)] == [12, 12, 97]
    assert _used(aws, consumer) == 12 + 12 + 97
