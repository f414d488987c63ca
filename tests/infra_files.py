"""Write a throwaway infra folder for a test: real files, compiled the real way."""

from __future__ import annotations

import textwrap
from pathlib import Path

PLANS = """\
plans:
  free: {rate: {limit: 5, per: second, burst: 10}, quota: {limit: 1000, per: day}, price: {per_1000_units: 0}}
  pro: {rate: {limit: 100, per: second}, quota: {limit: 1000000, per: month}, price: {per_1000_units: 0.50}}
"""


def write_infra(
    root: Path,
    services: dict[str, str],
    routes: str,
    *,
    team: str = "test",
    defaults: str = "{timeout_ms: 3000, max_body_bytes: 1048576}",
    auth: str = "",
    plans: str = PLANS,
) -> Path:
    infra = root / "infra"
    (infra / "routes").mkdir(parents=True, exist_ok=True)
    lines = ["stages:", "  dev:", "    services:"]
    lines += [f'      {name}: "{url}"' for name, url in services.items()]
    lines.append(f"defaults: {defaults}")
    (infra / "gateway.yaml").write_text("\n".join(lines) + "\n" + textwrap.dedent(auth))
    (infra / "plans.yaml").write_text(plans)
    (infra / "routes" / f"{team}.yaml").write_text(
        f"team: {team}\nroutes:\n" + textwrap.indent(textwrap.dedent(routes), "  ")
    )
    return infra
