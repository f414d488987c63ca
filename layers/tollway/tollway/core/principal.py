"""Who is calling: the only thing quota, usage and composition know about authentication."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    consumer_id: str
    plan: str
    scopes: frozenset[str]
    credential: str  # "api_key" | "jwt" | "anonymous"
    key_id: str | None = None  # API keys only; safe to log, unlike the key itself


ANONYMOUS = Principal(consumer_id="anonymous", plan="", scopes=frozenset(), credential="anonymous")
