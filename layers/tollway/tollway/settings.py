"""Settings the Lambda adapters and `tollway dev` pass in; the core never reads os.environ."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    infra: Path
    stage: str
    keys_table: str | None = None
    quota_table: str | None = None
    usage_table: str | None = None
    usage_queue_url: str | None = None
    key_secret_id: str | None = None  # Secrets Manager name or ARN of the API key secret
    environ: Mapping[str, str] | None = None  # for TOLLWAY_SERVICE_* and JWT secret variables

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], infra: Path) -> Settings:
        return cls(
            infra=infra,
            stage=environ.get("TOLLWAY_STAGE", "dev"),
            keys_table=environ.get("TOLLWAY_KEYS_TABLE"),
            quota_table=environ.get("TOLLWAY_QUOTA_TABLE"),
            usage_table=environ.get("TOLLWAY_USAGE_TABLE"),
            usage_queue_url=environ.get("TOLLWAY_USAGE_QUEUE_URL"),
            key_secret_id=environ.get("TOLLWAY_KEY_SECRET_ID"),
            environ=dict(environ),
        )
