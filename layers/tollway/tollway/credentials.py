"""AWS credentials and region for the request path's lean callers, without importing boto3
when the environment already says them.

Lambda hands a function its role's credentials in `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and its region in `AWS_REGION`: the
first providers of botocore's own chain. Reading them costs nothing, while importing
boto3 (or botocore's session) for its chain costs 130-170 ms of a cold start here
(docs/bench.md, row 5). Anything else goes to botocore's chain, imported only then:

    AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY set     static credentials, as botocore's
                                                      environment provider reads them
    ... with AWS_CREDENTIAL_EXPIRATION too            botocore (it refreshes those)
    none set (SnapStart functions get container       botocore's chain: container, profile,
    credentials, not these variables; a developer's   SSO, instance metadata...; refreshable
    profile)                                          credentials refresh themselves

Callers freeze credentials per call (`get_frozen_credentials()`), as with botocore's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


def credentials(environ: Mapping[str, str]) -> Any:
    """The credentials botocore's chain would find, or None when it finds none."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret and not environ.get("AWS_CREDENTIAL_EXPIRATION"):
        # botocore's order: the older name first.
        token = environ.get("AWS_SECURITY_TOKEN") or environ.get("AWS_SESSION_TOKEN") or None
        return StaticCredentials(key, secret, token)
    import botocore.session

    return botocore.session.get_session().get_credentials()


def region(environ: Mapping[str, str]) -> str | None:
    """`AWS_DEFAULT_REGION` (botocore's variable; Lambda sets it), then `AWS_REGION` (Lambda
    sets it too; botocore ignores it), else botocore's config (profiles)."""
    name = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION")
    if name:
        return name
    import botocore.session

    return botocore.session.get_session().get_config_variable("region")
