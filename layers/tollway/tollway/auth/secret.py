"""The deployment's API key secret: read once per container, turned into the key MAC.

The secret lives in Secrets Manager (KeySecret in template.yaml, generated at deploy time,
never in the template or the environment); the router and `tollway keys create` name it
by `TOLLWAY_KEY_SECRET_ID` and read it with the lean caller (`tollway.aws.secrets`: one
GetSecretValue, no boto3), with the endpoint, region and credentials the boto3 way
(`tollway dev` creates a random one in its emulator).

Read at init, synchronously, and kept for the life of the container. A SnapStart restore
does not read it again (tollway/snapstart.py): every issued key's MAC is under this one
value, so it does not change while the keys it signed are valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tollway.auth.keys import KeyMac

if TYPE_CHECKING:
    from tollway.aws.clock import AwsClock


def load_key_mac(secret_id: str, environ: Mapping[str, str], *, clock: AwsClock | None = None) -> KeyMac:
    """The MAC under the secret `secret_id` (name or ARN); raises AwsError if it cannot be read."""
    from tollway.aws.secrets import get_secret_value

    return KeyMac(get_secret_value(secret_id, environ, clock=clock))
