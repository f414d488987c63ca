"""Credential checking for protected routes.

The foundation accepts no credential yet: API keys and JWT land with the auth issue.
Until then every protected route answers 401, which is the honest answer.
"""

from __future__ import annotations

from tollway.auth.principal import Principal
from tollway.config.compile import CompiledConfig, CompiledRoute
from tollway.errors import Unauthorized
from tollway.http.messages import Request
from tollway.settings import Settings


class NoCredentials:
    async def authenticate(self, request: Request, route: CompiledRoute) -> Principal:
        raise Unauthorized("credentials cannot be verified yet", challenge='Bearer realm="tollway"')


def build_authenticator(config: CompiledConfig, settings: Settings, http_client) -> NoCredentials:
    return NoCredentials()
