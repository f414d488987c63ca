"""The deployment's API key secret: read once per container, turned into the key MAC.

The secret lives in Secrets Manager (KeySecret in template.yaml, generated at deploy time,
never in the template or the environment); the router and `tollway keys create` name it
by `TOLLWAY_KEY_SECRET_ID` and read it through Powertools parameters, with the endpoint
and credentials the boto3 way (`tollway dev` creates a random one in its emulator).
"""

from __future__ import annotations

from tollway.auth.keys import KeyMac


def load_key_mac(secret_id: str) -> KeyMac:
    """The MAC under the secret `secret_id` (name or ARN); raises if it cannot be read."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=0)
    if isinstance(value, bytes):
        return KeyMac(value)
    return KeyMac(str(value).encode("utf-8"))
