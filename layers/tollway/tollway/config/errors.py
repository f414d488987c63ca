"""A configuration problem that names its place: `FILE:LINE: subject: problem`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class ConfigProblem:
    file: str
    line: int
    subject: str  # "route profile.get", "plan free", "gateway", "team profiles"
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.subject}: {self.message}"


class ConfigError(Exception):
    """Every problem found in an infra folder; raised only after all were collected."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
