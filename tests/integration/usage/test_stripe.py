"""`tollway usage push-stripe` and StripePushFunction against a loopback server that answers
Stripe's meter-event endpoint as documented (tests/stripe_fake.py), usage on the moto server.

What Stripe receives is asserted exactly; a second run, a crash between Stripe's answer and
our record, a lost answer, refusals, a 5xx and a network failure never bill a unit twice
nor mark pushed a unit Stripe did not confirm."""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from tollway import cli
from tollway.config.models import Plans
from tollway.dev.serve import free_port
from tollway.usage import table
from tollway.usage.billing import Ledger, prices
from tollway.usage.customers import StripeCustomers
from tollway.usage.events import UsageEvent
from tollway.usage.push import STALE_AFTER_S, StripePush, identifier, month_bounds
from tollway.usage.stripe_meter import MeterEvent, StripeMeterEvents

from tests.infra_files import write_infra
from tests.stripe_fake import FakeStripe

ROOT = Path(__file__).resolve().parents[3]
PLANS = {
    "plans": {
        "free": {"price": {"per_1000_units": 0}},
        "pro": {"price": {"per_1000_units": 0.5}, "stripe": {"meter": "api_requests"}},
        "tokens": {"price": {"per_1000_units": 0.002}, "stripe": {"meter": "tokens"}},
    }
}
KEY = "sk_test_fake0123456789"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Usage:
    """The usage table on the moto server, filled through the real Ledger."""

    def __init__(self, aws_env: dict[str, str]) -> None:
        self.dynamodb = boto3.client("dynamodb")
        self.table = aws_env["TOLLWAY_USAGE_TABLE"]
        self.plans = Plans.model_validate(PLANS).plans
        self.ledger = Ledger(self.dynamodb, self.table, prices(self.plans))
        self.customers = StripeCustomers(self.dynamodb, self.table)

    def add(self, consumer: str, plan: str, units: int, when: float, times: int = 1) -> None:
        for _ in range(times):
            self.ledger.record(
                UsageEvent.model_validate(
                    {
                        "version": 1, "event_id": uuid.uuid4().hex,
                        "timestamp": datetime.fromtimestamp(when, UTC), "request_id": "r",
                        "consumer_id": consumer, "plan": plan, "route_id": "items.get", "method": "GET",
                        "status": 200, "latency_ms": 1, "request_bytes": 0, "response_bytes": 0,
                        "cost_units": units, "admitted": True, "backends": [],
                    }
                )
            )  # fmt: skip

    def state(self, consumer: str, month: str, plan: str) -> tuple[int, int, bool]:
        """(pushed, seq, a push pending) of a consumer's plan in a month."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key=table.push_key(consumer, month, plan), ConsistentRead=True
        ).get("Item", {})
        return int(item.get("pushed", {"N": 0})["N"]), int(item.get("seq", {"N": 0})["N"]), "pending" in item

    def push(self, fake: FakeStripe, sender: Any = None, retries: int = 2) -> StripePush:
        sender = sender or StripeMeterEvents(KEY, api_base=fake.url, max_network_retries=retries)
        return StripePush(self.dynamodb, self.table, self.plans, sender, fake.clock)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeStripe]:
    server = FakeStripe(api_key=KEY, clock=clock).start()
    yield server
    server.stop()


@pytest.fixture
def usage(aws: dict[str, str]) -> Usage:
    return Usage(aws)


@pytest.fixture
def acme(usage: Usage) -> Usage:
    """acme in 2026-11: 46 units on pro (26 x 1 + 4 x 5) and 500 on tokens; beta 7 on free."""
    usage.add("acme", "pro", 1, NOW - 3600, times=26)
    usage.add("acme", "pro", 5, NOW - 3600, times=4)
    usage.add("acme", "tokens", 250, NOW - 3600, times=2)
    usage.add("beta", "free", 1, NOW - 3600, times=7)  # a plan without a meter: never pushed
    usage.customers.set("acme", "cus_acme")
    return usage


def ident(usage: Usage, consumer: str, plan: str, seq: int, month: str = "2026-11") -> str:
    return identifier(usage.table, consumer, plan, month, seq)


def test_exact_meter_events_and_a_second_run_sends_nothing(acme, fake):
    result = acme.push(fake).run("2026-11")
    assert result.problems == []
    assert [r.path for r in fake.received] == ["/v1/billing/meter_events"] * 2
    assert [r.form for r in fake.received] == [
        {"event_name": "api_requests", "payload[stripe_customer_id]": "cus_acme", "payload[value]": "46",
         "identifier": ident(acme, "acme", "pro", 0), "timestamp": str(int(NOW))},
        {"event_name": "tokens", "payload[stripe_customer_id]": "cus_acme", "payload[value]": "500",
         "identifier": ident(acme, "acme", "tokens", 0), "timestamp": str(int(NOW))},
    ]  # fmt: skip
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.received)
    assert re.fullmatch(r"tollway-2026-11-[0-9a-f]{32}-0", ident(acme, "acme", "pro", 0))
    assert acme.state("acme", "2026-11", "pro") == (46, 1, False)

    assert acme.push(fake).run("2026-11").pushed == []  # twice: nothing new, nothing sent
    assert len(fake.received) == 2

    acme.add("acme", "pro", 1, NOW, times=3)  # more usage: the delta only, the next identifier
    result = acme.push(fake).run("2026-11")
    pushed = [(p.value, p.identifier, p.how) for p in result.pushed]
    assert pushed == [(3, ident(acme, "acme", "pro", 1), "sent")]
    assert fake.totals() == {("api_requests", "cus_acme"): 49, ("tokens", "cus_acme"): 500}
    assert acme.state("acme", "2026-11", "pro") == (49, 2, False)


class CrashAfterSend:
    """The process dies after Stripe took the event and before the push was recorded."""

    def __init__(self, sender: StripeMeterEvents, before: bool = False) -> None:
        self.sender, self.before = sender, before

    def send(self, event: MeterEvent) -> bool:
        if not self.before:
            self.sender.send(event)
        raise SystemExit("killed")


@pytest.mark.parametrize("before", [False, True], ids=["after Stripe took it", "before it was sent"])
def test_a_crash_mid_push_is_completed_by_the_next_run_and_billed_once(acme, fake, before):
    real = StripeMeterEvents(KEY, api_base=fake.url)
    with pytest.raises(SystemExit):
        acme.push(fake, sender=CrashAfterSend(real, before)).run("2026-11", ["acme"])
    assert acme.state("acme", "2026-11", "pro") == (0, 0, True)  # nothing marked pushed
    result = acme.push(fake).run("2026-11")
    how = "sent" if before else "already in Stripe"
    assert [(p.plan, p.value, p.how) for p in result.pushed] == [("pro", 46, how), ("tokens", 500, "sent")]
    assert fake.totals() == {("api_requests", "cus_acme"): 46, ("tokens", "cus_acme"): 500}
    # The same event both times: identifier, value and timestamp.
    pro = [r.form for r in fake.received if r.form["event_name"] == "api_requests"]
    assert len({json.dumps(f, sort_keys=True) for f in pro}) == 1
    assert acme.state("acme", "2026-11", "pro") == (46, 1, False)


def test_a_lost_answer_is_sent_again_with_the_same_identifier_and_counted_once(acme, fake):
    fake.lose_next_answer()  # Stripe keeps the event; the answer never arrives
    result = acme.push(fake, retries=0).run("2026-11", ["acme"])
    assert len(result.problems) == 1 and "Stripe could not be reached" in result.problems[0]
    assert f"kept as pending: {ident(acme, 'acme', 'pro', 0)}" in result.problems[0]
    assert acme.state("acme", "2026-11", "pro") == (0, 0, True)
    assert result.halted and len(fake.received) == 1  # the run stopped: tokens not tried

    fake.lose_next_answer()  # the package's own retry re-sends it, under the same identifier
    acme.add("acme", "tokens", 1, NOW)
    result = acme.push(fake, retries=2).run("2026-11", ["acme"])
    assert [(p.plan, p.value, p.how) for p in result.pushed] == [
        ("pro", 46, "already in Stripe"), ("tokens", 501, "already in Stripe"),
    ]  # fmt: skip
    assert fake.totals() == {("api_requests", "cus_acme"): 46, ("tokens", "cus_acme"): 501}


def test_a_5xx_keeps_the_push_pending_and_nothing_is_marked_pushed(acme, fake):
    fake.fail_next(500, times=3)  # the first try and both retries
    result = acme.push(fake).run("2026-11")
    assert result.problems == [
        f"acme on pro: 46 units not pushed: Stripe answered 500: An unknown error occurred"
        f" (kept as pending: {ident(acme, 'acme', 'pro', 0)})"
    ]
    assert len(fake.received) == 3 and fake.accepted == []
    assert acme.state("acme", "2026-11", "pro") == (0, 0, True)
    result = acme.push(fake).run("2026-11")
    assert result.problems == [] and [p.value for p in result.pushed] == [46, 500]
    assert fake.totals() == {("api_requests", "cus_acme"): 46, ("tokens", "cus_acme"): 500}


def test_a_refusal_marks_nothing_pushed_and_the_push_is_rebuilt(acme, fake):
    acme.customers.set("acme", "cus_gone")  # Stripe does not know it: 400, nothing kept
    acme.add("beta", "pro", 2, NOW)
    acme.customers.set("beta", "cus_beta")
    result = acme.push(fake).run("2026-11")
    assert result.problems == [
        "acme on pro: 46 units not pushed: Stripe answered 400: No such customer: 'cus_gone'",
        "acme on tokens: 500 units not pushed: Stripe answered 400: No such customer: 'cus_gone'",
    ]
    assert [(p.consumer, p.value) for p in result.pushed] == [("beta", 2)]  # the others still go
    assert acme.state("acme", "2026-11", "pro") == (0, 0, False)

    acme.customers.set("acme", "cus_acme")
    acme.add("acme", "pro", 1, NOW)
    result = acme.push(fake).run("2026-11", ["acme"])
    assert [(p.value, p.identifier) for p in result.pushed][0] == (47, ident(acme, "acme", "pro", 0))
    assert fake.totals() == {
        ("api_requests", "cus_acme"): 47, ("tokens", "cus_acme"): 500, ("api_requests", "cus_beta"): 2,
    }  # fmt: skip


def test_a_pending_push_older_than_stripes_dedupe_window_waits_for_a_person(acme, fake, clock):
    real = StripeMeterEvents(KEY, api_base=fake.url)
    with pytest.raises(SystemExit):
        acme.push(fake, sender=CrashAfterSend(real)).run("2026-11", ["acme"])
    clock.now += STALE_AFTER_S + 60
    sent = len(fake.received)
    result = acme.push(fake).run("2026-11", ["acme"])
    pro = ident(acme, "acme", "pro", 0)
    assert result.problems[0].startswith(f"acme on pro: push {pro} (46 units) was begun 23 h ago")
    assert result.problems[0].endswith(f"run with --resolve {pro}=sent or =unsent")
    assert [r.form["event_name"] for r in fake.received[sent:]] == ["tokens"]  # pro is not re-sent

    result = acme.push(fake).run("2026-11", ["acme"], resolve={pro: "sent", "tollway-x-1": "sent"})
    assert [(p.plan, p.how) for p in result.pushed] == [("pro", "resolved as sent")]
    assert result.problems == ["--resolve tollway-x-1: no pending push of 2026-11 has it"]
    assert len(fake.received) == sent + 1 and acme.state("acme", "2026-11", "pro") == (46, 1, False)
    assert fake.totals() == {("api_requests", "cus_acme"): 46, ("tokens", "cus_acme"): 500}


def test_unsent_resolution_forgets_the_pending_push_and_builds_it_anew(acme, fake, clock):
    with pytest.raises(SystemExit):
        acme.push(fake, sender=CrashAfterSend(None, before=True)).run("2026-11", ["acme"])
    clock.now += 2 * 86_400
    acme.add("acme", "pro", 1, clock.now)
    pro = ident(acme, "acme", "pro", 0)
    result = acme.push(fake).run("2026-11", ["acme"], resolve={pro: "unsent"})
    assert [(p.plan, p.value, p.how) for p in result.pushed] == [("pro", 47, "sent"), ("tokens", 500, "sent")]
    first = fake.received[0].form  # the units counted now, dated now, under the same identifier
    sent = (first["identifier"], first["payload[value]"], first["timestamp"])
    assert sent == (pro, "47", str(int(clock.now)))


def test_a_refused_re_send_is_kept_for_a_person(acme, fake):
    """A re-sent push refused with a 400 that is not the duplicate answer we know may still be
    a duplicate (Stripe documents no code for it): it is neither forgotten nor counted."""
    crash = CrashAfterSend(StripeMeterEvents(KEY, api_base=fake.url))
    with pytest.raises(SystemExit):
        acme.push(fake, sender=crash).run("2026-11", ["acme"])
    fake.customers.discard("cus_acme")
    result = acme.push(fake).run("2026-11", ["acme"])
    pro = ident(acme, "acme", "pro", 0)
    assert result.problems[0] == (
        f"acme on pro: 46 units not pushed: Stripe answered 400: No such customer: 'cus_acme'"
        f" (kept as pending: {pro}; if Stripe holds none, run with --resolve {pro}=unsent)"
    )
    assert acme.state("acme", "2026-11", "pro") == (0, 0, True)
    fake.customers.add("cus_acme")
    result = acme.push(fake).run("2026-11", ["acme"])
    assert [(p.plan, p.how) for p in result.pushed] == [("pro", "already in Stripe"), ("tokens", "sent")]
    assert fake.totals() == {("api_requests", "cus_acme"): 46, ("tokens", "cus_acme"): 500}


def test_after_the_month_the_last_second_is_the_timestamp_until_stripe_refuses_it(acme, fake, clock):
    _, end = month_bounds("2026-11")
    clock.now = end + 34 * 86_400  # 34 days after: still taken, dated the month's last second
    result = acme.push(fake).run("2026-11", ["acme"])
    assert result.problems == [] and {r.form["timestamp"] for r in fake.received} == {str(end - 1)}

    acme.add("acme", "pro", 1, NOW)
    clock.now = end + 35 * 86_400
    result = acme.push(fake).run("2026-11", ["acme"])
    assert result.problems == [
        "acme on pro: 1 units not pushed: 2026-11 ended more than 35 days ago,"
        " and Stripe refuses meter events older than that"
    ]
    assert len(fake.received) == 2


def test_a_consumer_without_a_stripe_customer_is_a_problem(acme, fake):
    acme.customers.remove("acme")
    result = acme.push(fake).run("2026-11")
    assert result.problems == [
        "acme on pro: 46 units not pushed: no Stripe customer"
        " (tollway usage stripe-customer --consumer acme --set cus_...)",
        "acme on tokens: 500 units not pushed: no Stripe customer"
        " (tollway usage stripe-customer --consumer acme --set cus_...)",
    ]
    assert fake.received == []


class Reentrant:
    """A second run starts while the first is between recording its push and sending it."""

    def __init__(self, usage: Usage, fake: FakeStripe) -> None:
        self.real = StripeMeterEvents(KEY, api_base=fake.url)
        self.usage, self.fake, self.nested = usage, fake, None

    def send(self, event: MeterEvent) -> bool:
        if self.nested is None:
            self.nested = self.usage.push(self.fake).run("2026-11", ["acme"])
        return self.real.send(event)


def test_two_runs_at_once_bill_once(acme, fake):
    sender = Reentrant(acme, fake)
    result = acme.push(fake, sender=sender).run("2026-11", ["acme"])
    assert [(p.plan, p.how) for p in sender.nested.pushed] == [("pro", "sent"), ("tokens", "sent")]
    assert [(p.plan, p.how) for p in result.pushed] == [("pro", "already in Stripe")]
    assert fake.totals() == {("api_requests", "cus_acme"): 46, ("tokens", "cus_acme"): 500}
    assert acme.state("acme", "2026-11", "pro") == (46, 1, False)


# ---- the command --------------------------------------------------------------------


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


@pytest.fixture
def command(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "plans.yaml").write_text(yaml.safe_dump(PLANS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOLLWAY_USAGE_TABLE", aws["TOLLWAY_USAGE_TABLE"])
    monkeypatch.setenv("STRIPE_API_KEY", KEY)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["usage", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def live(usage: Usage, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    """The real clock (the command's), acme's 46 units on pro this month."""
    server = FakeStripe(api_key=KEY).start()
    monkeypatch.setenv("TOLLWAY_STRIPE_API_BASE", server.url)
    usage.add("acme", "pro", 1, datetime.now(UTC).timestamp(), times=26)
    usage.add("acme", "pro", 5, datetime.now(UTC).timestamp(), times=4)
    usage.customers.set("acme", "cus_acme")
    yield server
    server.stop()


def test_push_stripe_command_pushes_once(command, live, usage):
    month = this_month()
    code, out, err = command("push-stripe", "--period", month)
    pro = ident(usage, "acme", "pro", 0, month)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"sent: acme on pro, 46 units ({pro})", f"{month}: 1 push(es), 0 problem(s)"]
    code, out, _ = command("push-stripe", "--period", month, "--json")
    assert (code, json.loads(out)) == (0, {"period": month, "pushed": [], "problems": []})
    assert live.totals() == {("api_requests", "cus_acme"): 46} and len(live.received) == 1


def test_push_stripe_command_errors_are_one_line_and_exit_1(command, live, usage, monkeypatch):
    month = this_month()
    pro = ident(usage, "acme", "pro", 0, month)
    live.fail_next(503, times=3)
    code, out, err = command("push-stripe", "--period", month)
    assert code == 1
    assert err.splitlines() == [
        f"tollway usage push-stripe: acme on pro: 46 units not pushed: Stripe answered 503:"
        f" An unknown error occurred (kept as pending: {pro})"
    ]
    # Stripe out of reach: nothing listens on the port.
    monkeypatch.setenv("TOLLWAY_STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
    code, out, err = command("push-stripe", "--period", month)
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(
        "tollway usage push-stripe: acme on pro: 46 units not pushed: Stripe could not be reached:"
    )
    assert "Traceback" not in err and usage.state("acme", month, "pro") == (0, 0, True)
    # A wrong key: Stripe's 401, and the key never printed.
    monkeypatch.setenv("TOLLWAY_STRIPE_API_BASE", live.url)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_wrongkey987654321")
    code, out, err = command("push-stripe", "--period", month)
    assert code == 1 and "Stripe answered 401: Invalid API Key provided" in err
    assert "wrongkey987654321" not in out + err
    # Back to normal: the pending push goes through once.
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    assert command("push-stripe", "--period", month)[0] == 0
    assert live.totals() == {("api_requests", "cus_acme"): 46}
    assert usage.state("acme", month, "pro") == (46, 1, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--period", "2026-11-20"], "period must be a month (YYYY-MM), not '2026-11-20'"),
     (["--period", "2026-11", "--resolve", "abc"],
      "'abc': give IDENTIFIER=sent or IDENTIFIER=unsent")],
)  # fmt: skip
def test_push_stripe_command_refuses_bad_arguments(command, args, message):
    code, out, err = command("push-stripe", *args)
    # One line, as every usage error (tollway.commands.common.Parser).
    assert (code, out) == (2, "") and err.startswith("tollway usage push-stripe: ") and message in err
    assert err.count("\n") == 1


def test_push_stripe_command_needs_a_key(command, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY")
    code, out, err = command("push-stripe", "--period", "2026-11")
    assert (code, err) == (
        1,
        "tollway usage push-stripe: no Stripe API key: set STRIPE_API_KEY,"
        " or TOLLWAY_STRIPE_SECRET_ID to a Secrets Manager secret\n",
    )


def test_stripe_customer_command(command):
    assert command("stripe-customer", "--consumer", "acme") == (0, "acme -> (no Stripe customer)\n", "")
    assert command("stripe-customer", "--consumer", "acme", "--set", "cus_A1") == (0, "acme -> cus_A1\n", "")
    assert command("stripe-customer", "--consumer", "acme") == (0, "acme -> cus_A1\n", "")
    code, _, err = command("stripe-customer", "--consumer", "acme", "--set", "acct_1")
    assert code == 2 and "is not a Stripe customer id" in err
    unset = command("stripe-customer", "--consumer", "acme", "--unset")
    assert unset == (0, "acme -> (no Stripe customer)\n", "")


# ---- the scheduled function -----------------------------------------------------------


def test_the_scheduled_function_pushes_with_the_key_from_secrets_manager(
    aws, usage, live, tmp_path, monkeypatch
):
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="stripe-key", SecretString=KEY)["ARN"]
    plans = yaml.safe_dump(PLANS)
    route = "- {id: s, path: /s, methods: [GET], public: true, backends: [{name: b, service: v, path: /}]}\n"
    infra = write_infra(tmp_path, {"v": "http://127.0.0.1:9"}, route, plans=plans)
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    for name, value in {**aws, "TOLLWAY_STRIPE_SECRET_ID": arn, "TOLLWAY_INFRA_DIR": str(infra)}.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("stripe_push_app", ROOT / "functions/stripe_push/app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    month = this_month()
    assert app.handler({}, None)["pushed"][month] == 1
    assert app.handler({}, None)["pushed"][month] == 0
    assert live.totals() == {("api_requests", "cus_acme"): 46}
    usage.add("zed", "pro", 3, datetime.now(UTC).timestamp())  # no Stripe customer: the invocation fails
    with pytest.raises(Exception, match=r"1 problem\(s\), the first: zed on pro: 3 units not pushed"):
        app.handler({}, None)


def test_a_run_out_of_time_begins_no_more_consumers_and_says_how_many_wait(acme, fake, clock):
    acme.add("beta", "pro", 2, NOW)
    acme.customers.set("beta", "cus_beta")
    result = acme.push(fake).run("2026-11", deadline=clock.now - 1)
    assert (result.pushed, fake.received) == ([], [])
    assert result.problems == ["out of time: 2 consumer(s) left for the next run"]
    result = acme.push(fake).run("2026-11", ["beta", "acme"], deadline=clock.now)
    assert [p.consumer for p in result.pushed] == ["beta", "acme", "acme"] and result.problems == []
