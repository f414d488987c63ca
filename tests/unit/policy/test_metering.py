"""Cost read from the answer (tollway.policy.metering), and its config checked with file:line."""

from __future__ import annotations

import pickle
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tollway.config.compile import compile_infra, cost_spec
from tollway.config.models import Metering
from tollway.policy.metering import MAX_EVENT_BYTES, Reading, SseUsage

from tests.unit.config.test_check import problems, write_infra

OPENAI = "usage.prompt_tokens + 3 * usage.completion_tokens"


def spec(units, **more):
    return cost_spec(Metering.model_validate({"units": units, **more}))


def answer(usage) -> bytes:
    return orjson.dumps({"id": "x", "usage": usage})


def test_weights_sum_each_field_and_round_up_once() -> None:
    s = spec(OPENAI)
    assert s.read(answer({"prompt_tokens": 10, "completion_tokens": 5}), "application/json") == Reading(
        25, {"usage.prompt_tokens": 10, "usage.completion_tokens": 5}, "read"
    )
    halves = spec(
        [{"field": "usage.input_tokens", "weight": 0.5}, {"field": "usage.output_tokens", "weight": 1.5}]
    )
    # 3 x 0.5 + 3 x 1.5 = 6 exactly; 1 x 0.5 + 1 x 1.5 = 2; 1 x 0.5 = 0.5 -> 1 (rounded up once, at the end)
    assert halves.read(answer({"input_tokens": 3, "output_tokens": 3}), None).units == 6
    assert halves.read(answer({"input_tokens": 1, "output_tokens": 1}), None).units == 2
    assert halves.read(answer({"input_tokens": 1}), None).units == 1
    assert spec("usage.total_tokens").read(answer({"total_tokens": 19}), None).units == 19


def test_missing_usage_keeps_the_reservation_unless_the_route_says_missing() -> None:
    s = spec(OPENAI)
    for body in (b'{"id": "x"}', b"not json", b"", b"[1, 2]", b'{"usage": null}'):
        reading = s.read(body, "application/json")
        assert reading == Reading(0, {}, "missing")
        assert s.charge(reading, 160) == 160  # never 0 for an answer that did not say
    stated = spec(OPENAI, missing=50)
    assert stated.charge(stated.read(b'{"id": "x"}', None), 160) == 50
    assert spec(OPENAI, missing=0).charge(Reading(0, {}, "missing"), 160) == 0
    # One field present, the other absent: the absent one counts 0.
    read = s.read(answer({"prompt_tokens": 4}), None)
    assert read == Reading(4, {"usage.prompt_tokens": 4}, "read")
    assert s.charge(read, 160) == 4


def test_an_error_answer_pays_only_the_usage_it_carries() -> None:
    s = spec(OPENAI, missing=50)
    assert s.charge(Reading(0, {}, "missing"), 160, failed=True) == 0
    assert s.charge(Reading(0, {}, "malformed"), 160, failed=True) == 0
    assert s.charge(s.read(answer({"prompt_tokens": 9}), None), 160, failed=True) == 9


def test_a_cut_stream_pays_at_least_what_an_answer_without_usage_pays() -> None:
    s = spec(OPENAI)
    assert s.charge(Reading(0, {}, "missing"), 250, cut=True) == 250
    assert s.charge(Reading(30, {"usage.prompt_tokens": 30}, "read"), 250, cut=True) == 250
    assert s.charge(Reading(400, {"usage.prompt_tokens": 400}, "read"), 250, cut=True) == 400
    assert spec(OPENAI, missing=7).charge(Reading(3, {"usage.prompt_tokens": 3}, "read"), 250, cut=True) == 7


@pytest.mark.parametrize(
    "bad",
    ["12", -1, -0.5, True, None, [3], {"n": 3}],
    ids=["string", "negative", "negative-float", "bool", "null", "list", "object"],
)
def test_malformed_usage_is_charged_the_default_and_said_so(bad) -> None:
    body = answer({"prompt_tokens": bad, "completion_tokens": 2})
    s = spec(OPENAI, missing=7)
    assert s.read(body, None) == Reading(0, {}, "malformed")
    assert s.charge(s.read(body, None), 160) == 7
    assert spec(OPENAI).charge(s.read(body, None), 160) == 160


SSE = (
    b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
    b": a comment\n\n"
    b'event: ping\ndata: {"usage": null}\n\n'
    b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 12}}\r\n\r\n'
    b"data: [DONE]\n\n"
)


def test_sse_usage_is_found_in_the_final_chunk_however_the_stream_is_cut() -> None:
    s = spec(OPENAI)
    assert s.read(SSE, "text/event-stream; charset=utf-8").units == 7 + 36
    for size in (1, 2, 7, 50):
        scanner = SseUsage(s)
        for start in range(0, len(SSE), size):
            scanner.feed(SSE[start : start + size])
        assert scanner.reading() == Reading(
            43, {"usage.prompt_tokens": 7, "usage.completion_tokens": 12}, "read"
        )


def test_sse_fields_split_over_events_keep_the_last_value_of_each() -> None:
    # Anthropic's shape: input tokens in message_start, output tokens counted up in message_delta.
    s = spec("message.usage.input_tokens + 5 * usage.output_tokens")
    stream = (
        b'event: message_start\ndata: {"message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}\n\n'
        b'event: message_delta\ndata: {"usage": {"output_tokens": 3}}\n\n'
        b'event: message_delta\ndata: {"usage": {"output_tokens": 8}}'  # no final newline
    )
    assert s.read(stream, "text/event-stream").units == 9 + 40
    assert s.read(b"data: [DONE]\n\n", "text/event-stream").status == "missing"
    assert s.read(b'data: {"usage": {"output_tokens": "8"}}\n\n', "text/event-stream").status == "malformed"


@pytest.mark.parametrize("cut", [0, 1, 6, 100])
def test_the_rest_of_a_line_longer_than_any_event_is_not_read_as_lines_of_its_own(cut: int) -> None:
    """A line past the event size cap, cut by the network anywhere after the cap: what follows
    in the next chunks is still that line (an EventSource reads it whole) until its end. It was
    read as a line of its own, so a backend answer that says `data: ` + 64 KiB of text then
    `data: {"usage": ...}` in one line was charged the usage its text spelled (found by the
    round-3 attacker)."""
    long_line = b"data: " + b"x" * (MAX_EVENT_BYTES + 10)
    forged = b'data: {"usage": {"prompt_tokens": 1, "completion_tokens": 0}}\n\n'
    honest = b'data: {"usage": {"prompt_tokens": 7, "completion_tokens": 12}}\n\n'
    scanner = SseUsage(spec(OPENAI))
    scanner.feed(honest)
    for chunk in (long_line[:cut], long_line[cut:], forged):  # the network cuts it where it will
        scanner.feed(chunk)
    assert scanner.reading() == Reading(43, {"usage.prompt_tokens": 7, "usage.completion_tokens": 12}, "read")
    after = SseUsage(spec(OPENAI))  # and the stream reads on after that line's end
    for chunk in (long_line, forged, honest):
        after.feed(chunk)
    assert after.reading() == Reading(43, {"usage.prompt_tokens": 7, "usage.completion_tokens": 12}, "read")


@pytest.mark.parametrize("field", [b": ", b"event: ", b"id: ", b"retry: ", b"datax: "])
@pytest.mark.parametrize("cut", [1, 6, 100])
def test_a_long_line_of_another_field_does_not_hide_its_events_usage(field: bytes, cut: int) -> None:
    """A comment (or an event, id, retry or unknown field) longer than any event is ignored by an
    EventSource: the event it is in still has its `data`. The meter dropped that event when the
    long line came in more than one chunk (read whole in one chunk, it was ignored as it should
    be), so the usage it said was not read and the answer was charged as one without usage (the
    reservation, or `missing`: 0 on a route that says so)."""
    s = spec(OPENAI, missing=0)
    usage = b'data: {"usage": {"prompt_tokens": 7, "completion_tokens": 12}}\n'
    long_line = field + b"x" * (MAX_EVENT_BYTES + 10) + b"\n"
    expected = Reading(43, {"usage.prompt_tokens": 7, "usage.completion_tokens": 12}, "read")
    for stream in (usage + long_line + b"\n", long_line + usage + b"\n"):
        assert s.read(stream, "text/event-stream") == expected  # in one chunk: read
        scanner = SseUsage(s)
        at = stream.index(long_line) + cut + MAX_EVENT_BYTES  # the network cuts past the cap
        for chunk in (stream[:at], stream[at:]):
            scanner.feed(chunk)
        assert scanner.reading() == expected


def test_an_lf_alone_in_a_chunk_after_a_cr_is_one_line_end_and_the_next_lf_a_blank_line() -> None:
    """`\\r` | `\\n` | `\\n` in three chunks is a CRLF and then a blank line to an EventSource.
    The meter dropped the LF that ended the CR's line and then still remembered the CR, so it
    dropped the next LF too: the blank line that ends the event was lost, the next event's data
    was joined to it, and usage split over that event's lines was not read (charged 1, not 900)."""
    s = spec("usage.prompt_tokens")
    chunks = [
        b'data: {"usage": {"prompt_tokens": 1}}\r',
        b"\n",
        b"\n",
        b'data: {"usage":\n',
        b'data: {"prompt_tokens": 900}}\n\n',
    ]
    scanner = SseUsage(s)
    for chunk in chunks:
        scanner.feed(chunk)
    assert scanner.reading() == s.read(b"".join(chunks), "text/event-stream")
    assert s.read(b"".join(chunks), "text/event-stream").units == 900


@settings(max_examples=200, deadline=None)
@given(
    ends=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    bom=st.booleans(),
    lines=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_sse_usage_is_read_as_an_event_source_reads_it_however_spelled_and_cut(
    ends, bom, lines, cuts
) -> None:
    """Any line end SSE allows, a byte order mark, one event's JSON over several `data:` lines,
    and chunks cut anywhere (a CR and its LF in two chunks included): the usage is read."""
    usage = b'{"choices": [],\ndata: "usage": {"prompt_tokens": 7,\ndata:"completion_tokens": 12}}'
    if not lines:
        usage = b'{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 12}}'
    stream = b': keep-alive\n\ndata: {"choices": [{"delta": {}}]}\n\n'
    stream += b"data: " + usage + b"\n\ndata: [DONE]\n\n"
    stream = (b"\xef\xbb\xbf" if bom else b"") + stream.replace(b"\n", ends)
    scanner = SseUsage(spec(OPENAI))
    at = 0
    for cut in sorted(min(c, len(stream)) for c in cuts) + [len(stream)]:
        scanner.feed(stream[at:cut])
        at = cut
    assert scanner.reading() == Reading(43, {"usage.prompt_tokens": 7, "usage.completion_tokens": 12}, "read")


def test_reservation_from_the_request_else_the_fixed_reserve_else_the_route_cost() -> None:
    estimated = spec(OPENAI, estimate={"field": "max_tokens", "weight": 3, "plus": 100}, reserve=1000)
    assert estimated.reservation(b'{"max_tokens": 20}', cost=1) == 160
    assert estimated.reservation(b'{"max_tokens": 0.5}', cost=1) == 102
    for body in (b"{}", b"garbage", b'{"max_tokens": "20"}', b'{"max_tokens": -3}'):
        assert estimated.reservation(body, cost=1) == 1000
    assert spec(OPENAI).reservation(b'{"max_tokens": 20}', cost=4) == 4
    assert spec(OPENAI, estimate={"field": "params.n"}).reservation(b'{"params": {"n": 9}}', cost=1) == 9


def test_a_reservation_is_never_zero() -> None:
    """A request reserving 0 would need no room in a full budget (issue 18, item 3)."""
    assert spec(OPENAI, estimate={"field": "max_tokens"}).reservation(b'{"max_tokens": 0}', cost=1) == 1
    assert spec(OPENAI, reserve=0).reservation(b"{}", cost=1) == 1
    assert spec(OPENAI).reservation(b"{}", cost=0) == 1


def test_the_compiled_spec_is_plain_data() -> None:
    s = spec(OPENAI, estimate={"field": "max_tokens", "weight": "1.25"}, missing=3)
    assert pickle.loads(pickle.dumps(s)) == s
    assert s.terms[1].weight == Decimal(3) and s.estimate is not None and s.estimate.weight == Decimal("1.25")


ROUTES = """\
team: ai
routes:
  - id: chat
    path: /v1/chat
    methods: [POST]
    auth: [api_key]
    backends: [{name: b, service: users, path: /x}]
    metering:
      units: usage.prompt_tokens + three * usage.x
      missing: -1
  - id: chat2
    path: /v1/chat2
    methods: [POST]
    auth: [api_key]
    backends: [{name: b, service: users, path: /x}]
    metering:
      units: [{field: "usage..x", weight: -2}, usage.y, usage.y]
      estimate: {field: max_tokens, weight: 1, plus: 1, cap: 3}
  - id: open
    path: /v1/open
    methods: [POST]
    public: true
    backends: [{name: b, service: users, path: /x}]
    metering: {units: usage.total_tokens}
"""


def test_routes_check_names_every_metering_problem_with_its_line(tmp_path: Path) -> None:
    assert problems(write_infra(tmp_path, {"ai.yaml": ROUTES, "dup.yaml": DUPLICATE})) == [
        "infra/routes/ai.yaml:9: route chat: metering.units: 'three * usage.x' is not a field path"
        " or WEIGHT * field.path",
        "infra/routes/ai.yaml:10: route chat: metering.missing: Input should be greater than or equal to 0",
        "infra/routes/ai.yaml:17: route chat2: metering.units[0].field: 'usage..x' is not a field path"
        " (JSON member names joined by dots)",
        "infra/routes/ai.yaml:17: route chat2: metering.units[0].weight:"
        " Input should be greater than or equal to 0",
        "infra/routes/ai.yaml:18: route chat2: unknown key 'metering.estimate.cap'",
        "infra/routes/ai.yaml:19: route open: a public route spends no quota: metering needs auth",
        "infra/routes/dup.yaml:8: route dup: metering: a field is listed twice",
    ]


DUPLICATE = """\
team: dup
routes:
  - id: dup
    path: /v1/dup
    methods: [POST]
    auth: [api_key]
    backends: [{name: b, service: users, path: /x}]
    metering: {units: [usage.y, {field: usage.y, weight: 2}]}
"""


def test_the_repository_demo_route_is_metered() -> None:
    route = next(
        r
        for r in compile_infra(Path(__file__).parents[3] / "infra", "dev").routes
        if r.id == "chat.completions"
    )
    assert route.metering is not None
    assert [(t.name, t.weight) for t in route.metering.terms] == [
        ("usage.prompt_tokens", 1),
        ("usage.completion_tokens", 3),
    ]
    assert route.metering.reservation(b'{"max_tokens": 10}', route.cost) == 130


def test_routes_list_shows_how_a_route_is_metered(capsys: pytest.CaptureFixture[str]) -> None:
    from tollway.cli import main

    assert main(["routes", "list", "--infra", str(Path(__file__).parents[3] / "infra"), "--json"]) == 0
    rows = {row["id"]: row for row in orjson.loads(capsys.readouterr().out)["routes"]}
    assert rows["chat.completions"]["metering"] == "1 * usage.prompt_tokens + 3 * usage.completion_tokens"
    assert rows["users.get"]["metering"] is None


def test_numbers_past_what_dynamodb_holds_are_capped() -> None:
    from tollway.policy.metering import MAX_UNITS

    s = spec(OPENAI, estimate={"field": "max_tokens", "weight": 3})
    assert s.reservation(b'{"max_tokens": 1e300}', cost=1) == MAX_UNITS
    huge = b'{"usage": {"prompt_tokens": 1' + b"0" * 40 + b', "completion_tokens": 1}}'
    assert s.read(huge, None).units == MAX_UNITS
    assert len(str(MAX_UNITS)) < 38  # DynamoDB numbers: 38 significant digits


_PIECES = [
    b'data: {"usage": {"prompt_tokens": 3}}',
    b'data: {"usage": {"prompt_tokens": 900}}',
    b'data: {"usage":',
    b'data: {"prompt_tokens": 40}}',
    b"",
    b": comment",
    b"event: x",
    b"data: [DONE]",
    b": " + b"x" * (MAX_EVENT_BYTES + 5),
    b"event: " + b"x" * (MAX_EVENT_BYTES + 5),
    b"data: " + b"y" * (MAX_EVENT_BYTES + 5),
]


ENDS = [b"\n", b"\r\n", b"\r"]


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(ENDS)), max_size=10),
    bom=st.booleans(),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=10),
    near_ends=st.booleans(),
)
def test_the_meter_reads_a_stream_cut_anywhere_as_it_reads_it_whole(lines, bom, cuts, near_ends) -> None:
    """However the network cuts a stream (CR and LF apart, an LF alone, a line past the cap over
    several chunks), the meter reads what it reads from the stream in one piece."""
    s = spec("usage.prompt_tokens")
    stream = (b"\xef\xbb\xbf" if bom else b"") + b"".join(line + end for line, end in lines)
    at = {int(c * len(stream)) for c in cuts}
    if near_ends:  # on each side of line ends
        for i, byte in enumerate(stream[:20_000]):
            if byte in b"\r\n":
                at |= {i, i + 1}
    scanner, start = SseUsage(s), 0
    for end in [*sorted(at), len(stream)]:
        scanner.feed(stream[start:end])
        start = max(start, end)
    assert scanner.reading() == s.read(stream, "text/event-stream")
