"""The 401 answers of RFC 6750 §3: which challenge a caller gets, and why.

Every credential that cannot be used — malformed, unknown, revoked, expired, badly
signed — is a 401 with `error="invalid_token"`; a request without one gets the bare
challenge. Only a valid credential that lacks a scope or names an unknown plan is a 403.
"""

from __future__ import annotations

from tollway.errors import Unauthorized

REALM = 'Bearer realm="tollway"'


def missing(detail: str) -> Unauthorized:
    return Unauthorized(detail, challenge=REALM)


def invalid_token(detail: str) -> Unauthorized:
    description = detail.replace("\\", "").replace('"', "'")
    return Unauthorized(
        detail, challenge=f'{REALM}, error="invalid_token", error_description="{description}"'
    )
