"""The docs say what is true: every module and file they name exists, every alarm has its
entry in the operator's guide, the license is the one pyproject.toml names, and the facts
the README repeats agree with their sources."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def _exists(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                found = getattr(found, name)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_and_file_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text()
    missing = []
    for m in re.finditer(r"(?<![\w/.])((?:layers/tollway/)?tollway/[\w/]+\.py)", text):
        path = m.group(1)
        if not (ROOT / path if path.startswith("layers/") else ROOT / "layers" / "tollway" / path).exists():
            missing.append(path)
    missing += [m.group(1) for m in re.finditer(r"`(tollway(?:\.\w+)+)`", text) if not _exists(m.group(1))]
    assert missing == []


def test_every_alarm_has_its_meaning_and_action_in_the_operator_s_guide() -> None:
    from tollway.dev.template import read_template

    resources = read_template(ROOT / "template.yaml")["Resources"]
    alarms = sorted(k for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm")
    guide = (ROOT / "docs" / "deploy.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|[^|]+\|[^|]+\|[^|]+\|$", guide, re.M)}
    assert set(alarms) <= rows, set(alarms) - rows


@pytest.mark.parametrize(
    "topic",
    ["## A custom domain", "## Private services: VPC access and Cloud Map", "## CloudFront and WAF",
     "## Canary and rollback", "redrive", "## Logs Insights queries"],
)  # fmt: skip
def test_the_operator_s_guide_covers(topic: str) -> None:
    assert topic in (ROOT / "docs" / "deploy.md").read_text()


def test_the_license_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10_000


def test_vulnerabilities_are_reported_somewhere_real() -> None:
    reporting = (ROOT / "SECURITY.md").read_text().split("## Reporting a vulnerability")[1].split("\n## ")[0]
    assert "placeholder" not in reporting and "private vulnerability reporting" in reporting


def test_the_readme_states_the_demo_key_s_plan_and_the_bench_s_duration() -> None:
    from tollway.dev.demo import DEMO_PLAN

    readme = (ROOT / "README.md").read_text()
    assert f"plan `{DEMO_PLAN}`" in readme
    duration = re.search(r"It takes about (\d+) minutes", (ROOT / "docs" / "bench.md").read_text())
    assert duration and f"`make bench` (about {duration.group(1)} minutes" in readme
