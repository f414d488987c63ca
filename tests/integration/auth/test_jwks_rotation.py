"""JWTs verified against a JWKS served by a real loopback server, through a key rotation."""

from __future__ import annotations

import asyncio
import time

from ...unit.auth.helpers import Signer, unsigned

IDP = "http://127.0.0.1/idp"


def token(signer: Signer, **claims) -> dict[str, str]:
    now = int(time.time())
    body = {"iss": IDP, "aud": "tollway", "sub": "svc-7", "exp": now + 60, "plan": "pro", **claims}
    return {"authorization": f"Bearer {signer.sign(body)}"}


async def test_rotation_new_kid_appears_old_kid_removed(stack):
    old, new = Signer("RS256", "2026-01"), Signer("ES256", "2026-02")
    stack.jwks.keys = [old.jwk()]
    response = await stack.client.get("/v1/either", headers=token(old))
    assert response.status_code == 200, response.text
    assert response.json()["x-tollway-consumer"] == "http://127.0.0.1/idp|svc-7"
    assert stack.jwks.hits == 1

    stack.jwks.keys = [new.jwk()]  # the issuer rotates: the old key is gone
    # Within jwks_refresh_s (1 s) of the last fetch an unknown kid does not refetch.
    for _ in range(5):
        response = await stack.client.get("/v1/either", headers=token(new))
        assert response.status_code == 401
        assert response.json()["detail"] == "token is signed with an unknown key"
    assert stack.jwks.hits == 1

    await asyncio.sleep(1.05)
    response = await stack.client.get("/v1/either", headers=token(new))
    assert response.status_code == 200, response.text
    assert stack.jwks.hits == 2
    response = await stack.client.get("/v1/either", headers=token(old))
    assert response.status_code == 401
    assert response.json()["detail"] == "token is signed with an unknown key"
    assert stack.jwks.hits == 2


async def test_a_token_for_the_wrong_issuer_or_forged_alg_never_verifies(stack):
    signer = Signer("RS256", "k1")
    stack.jwks.keys = [signer.jwk()]
    response = await stack.client.get("/v1/either", headers=token(signer, iss="https://elsewhere.example/"))
    assert response.status_code == 401 and response.json()["detail"] == "token issuer is not trusted"
    forged = unsigned({"iss": IDP, "aud": "tollway", "sub": "x", "exp": int(time.time()) + 60}, kid="k1")
    response = await stack.client.get("/v1/either", headers={"authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "token algorithm is not allowed for this issuer"
