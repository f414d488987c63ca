"""Schemathesis against the served gateway, driven by the document `tollway openapi` prints.

Positive and negative cases of every operation, then stateful sequences, each with one
of the credential kinds of `stack.KINDS` and forged fields in the gateway's namespaces.
Every backend answers 200, so the invariants are: no 5xx, an `X-Request-Id` on every
response, a problem+json body on every error, no 2xx on a protected operation without a
valid credential, and the boundary (`invariant.py`): no caller field in the gateway's
namespaces and no path outside its template ever reaches a backend.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from tollway.config.compile import compile_infra
from tollway.openapi import document

from tests.fuzz.invariant import FORGED_HEADERS, Recording, assert_boundary_held
from tests.fuzz.stack import DERANDOMIZE, EXAMPLES, KINDS, VALID

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=list(HealthCheck),
)
CREDENTIAL_HEADERS = {"x-api-key", "authorization"}


def load_schema(served, *, linked: bool = False) -> Any:
    doc = document(compile_infra(served.infra, "dev", {}))
    if linked:
        link_everything(doc)
    return schemathesis.openapi.from_dict(doc)


def link_everything(doc: dict[str, Any]) -> None:
    """Routes create no resources, so the document has no links; for sequences, feed what the
    gateway answered (the echoed path and method) into every path parameter of every
    operation, so a sequence mixes operations and carries the gateway's own output back in."""
    targets = [
        (op["operationId"], [p["name"] for p in op["parameters"] if p["in"] == "path"])
        for item in doc["paths"].values()
        for op in item.values()
    ]
    # Only deterministic output: a random value (the request id) makes Hypothesis' replay flaky.
    sources = ["$response.body#/path", "$response.body#/method"]
    for item in doc["paths"].values():
        for op in item.values():
            op["responses"]["200"]["links"] = {
                f"to-{target}-{i}": {"operationId": target, "parameters": {name: source for name in names}}
                for target, names in targets
                if names
                for i, source in enumerate(sources)
            }


def protected(case: Any) -> bool:
    return bool(case.operation.definition.raw.get("security"))


def valid(case: Any, kind: str) -> bool:
    """Whether `kind` is a credential this operation must accept (a scopeless key: no scopes needed)."""
    needs_scopes = "Required scopes" in case.operation.definition.raw.get("description", "")
    return kind in VALID or (kind == "scopeless" and not needs_scopes)


def send(case: Any, served: Any, session: requests.Session, kind: str) -> Any:
    """The case with a credential of `kind`, and forged fields in the gateway's namespaces."""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in CREDENTIAL_HEADERS}
    case.headers = {**headers, **FORGED_HEADERS, **served.creds.headers(kind)}
    served.backend.seen.clear()
    return case.call(base_url=served.url, session=session, timeout=10)


def check(case: Any, response: Any, kind: str, backend: Recording) -> None:
    """The gateway's invariants for one answer to one generated request."""
    status = response.status_code
    where = f"{case.method} {case.formatted_path} ({kind}) -> {status}"
    assert_boundary_held(backend, where)
    headers = {k.lower(): v for k, v in response.headers.items()}
    assert "x-request-id" in headers, f"no X-Request-Id: {where}"
    assert status < 500, f"the gateway failed with every backend healthy: {where}: {response.content[:300]!r}"
    if protected(case) and not valid(case, kind):
        assert status >= 400, f"a protected operation answered without a valid credential: {where}"
    if status >= 400 and case.method != "HEAD":
        content_type = headers["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type == "application/problem+json", where
        problem = json.loads(response.content)
        assert problem["status"] == status, where
        assert {"type", "title", "detail", "request_id"} <= problem.keys(), where
        assert "Traceback" not in problem["detail"], where


def run_stateless(served, mode: GenerationMode) -> Counter[int]:
    schema = load_schema(served)
    session = requests.Session()
    seen: Counter[int] = Counter()

    @SETTINGS
    @given(case=schema.as_strategy(generation_mode=mode), kind=st.sampled_from(KINDS))
    def probe(case: Any, kind: str) -> None:
        response = send(case, served, session, kind)
        check(case, response, kind, served.backend)
        seen[response.status_code] += 1

    probe()
    session.close()
    return seen


def test_positive_cases_meet_the_invariants(served) -> None:
    seen = run_stateless(served, GenerationMode.POSITIVE)
    # The fuzzer reached the backends, and was refused where it should be.
    assert seen[200] > 0 and seen[401] > 0, seen


def test_negative_cases_are_refused_with_a_problem_never_a_5xx(served) -> None:
    seen = run_stateless(served, GenerationMode.NEGATIVE)
    assert sum(n for status, n in seen.items() if 400 <= status < 500) > 0, seen


def test_stateful_sequences_meet_the_invariants(served) -> None:
    schema = load_schema(served, linked=True)
    session = requests.Session()
    steps: Counter[str] = Counter()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Any:
            # Chosen by the case's own data, so that a replayed sequence uses the same kinds.
            kind = KINDS[
                zlib.crc32(repr((case.operation.label, case.path_parameters, case.body)).encode())
                % len(KINDS)
            ]
            response = send(case, served, session, kind)
            steps[kind] += 1
            check(case, response, kind, served.backend)
            return response

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            return None  # `call` checked the gateway's own invariants

    Workflow.run(
        settings=settings(
            max_examples=max(EXAMPLES // 10, 5),
            stateful_step_count=10,
            deadline=None,
            database=None,
            derandomize=DERANDOMIZE,
            suppress_health_check=list(HealthCheck),
        )
    )
    session.close()
    assert sum(steps.values()) > 0
