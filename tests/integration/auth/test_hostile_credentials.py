"""Property: random and mutated credentials and headers never get a 2xx or a 5xx."""

from __future__ import annotations

import asyncio
import time

import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...unit.auth.helpers import Signer
from .conftest import DEV_ISSUER, HS_SECRET

SIGNER = Signer("RS256", "k1")
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
NOW = int(time.time())
CLAIMS = {"aud": "tollway", "sub": "someone", "exp": NOW + 3600, "scope": "things:read", "plan": "pro"}
TOKENS = {
    "rs": SIGNER.sign({"iss": "http://127.0.0.1/idp", **CLAIMS}),
    "hs": jwt.encode({"iss": DEV_ISSUER, **CLAIMS}, HS_SECRET, algorithm="HS256"),
}


@st.composite
def mutated(draw, original: str) -> str:
    """`original` with one edit; the last character is left alone because base64url's
    padding bits there can change without changing the decoded signature."""
    position = draw(st.integers(0, len(original) - 2))
    edit = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "swap-dot"]))
    char = draw(PRINTABLE)
    if edit == "replace" and char != original[position]:
        return original[:position] + char + original[position + 1 :]
    if edit == "delete":
        return original[:position] + original[position + 1 :]
    if edit == "insert":
        return original[:position] + char + original[position:]
    if edit == "swap-dot":
        return original.replace(".", draw(st.sampled_from(["", "..", "_", "."])), 1) + "x"
    return original[:position]


def credentials(valid: dict[str, str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(PRINTABLE, max_size=300),
        st.sampled_from(["", "eyJ", "eyJ..", "tw_", "Bearer", "null", "none", "demo-key"]),
        *(mutated(value) for value in valid.values()),
        st.builds(lambda s: "eyJ" + s, st.text(PRINTABLE, max_size=200)),
    )


def header_sets(valid: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    value = credentials(valid)
    scheme = st.sampled_from(["Bearer ", "bearer ", "Basic ", "Token ", "", "Bearer  "])
    return st.one_of(
        st.builds(lambda v: {"x-api-key": v}, value),
        st.builds(lambda s, v: {"authorization": s + v}, scheme, value),
        st.builds(lambda a, b: {"x-api-key": a, "authorization": "Bearer " + b}, value, value),
        st.dictionaries(
            st.sampled_from(["x-api-key", "authorization", "x-tollway-consumer", "cookie"]), value
        ),
    )


async def test_hostile_credentials_get_401_or_403_never_2xx_or_5xx(stack, capsys):
    stack.jwks.keys = [SIGNER.jwk()]
    key = stack.create_key(capsys, "--scopes", "things:read", plan="pro")["key"]
    valid = {"key": key, **TOKENS}
    for headers in ({"x-api-key": key}, {"authorization": f"Bearer {TOKENS['rs']}"}):
        assert (await stack.client.get("/v1/either", headers=headers)).status_code == 200
    seen: dict[int, int] = {}
    loop = asyncio.get_running_loop()

    # Hypothesis drives a plain function; each example runs on this test's loop, where the
    # gateway's clients live, and Hypothesis itself runs in a worker thread.
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(headers=header_sets(valid), path=st.sampled_from(["/v1/either", "/v1/things/1", "/v1/tokens"]))
    def probe(headers: dict[str, str], path: str) -> None:
        call = stack.client.get(path, headers=headers)
        response = asyncio.run_coroutine_threadsafe(call, loop).result(timeout=10)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (401, 403), (headers, response.status_code, response.text)
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith('Bearer realm="tollway"')

    await asyncio.to_thread(probe)
    assert seen.get(401, 0) > 100
