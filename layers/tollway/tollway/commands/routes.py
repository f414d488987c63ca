"""`tollway routes check|list`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tollway.config.compile import compile_infra, compile_loaded
from tollway.config.errors import ConfigError, ConfigProblem
from tollway.config.load import Loaded, load_infra

INFRA_HELP = "the infra folder (default: ./infra)"


def register(sub: argparse._SubParsersAction) -> None:
    routes = sub.add_parser("routes", help="check and list routes").add_subparsers(
        dest="action", required=True
    )
    check = routes.add_parser(
        "check", help="validate every infra file for every stage; exit 1 and FILE:LINE for each problem"
    )
    check.add_argument("--infra", type=Path, default=Path("infra"), help=INFRA_HELP)
    check.add_argument(
        "--json",
        action="store_true",
        help='print {"ok", "routes", "problems": [{"file", "line", "subject", "message"}]} (for CI)',
    )
    check.add_argument(
        "--write-table",
        type=Path,
        metavar="INFRA_COPY",
        help="then write the compiled route table of every stage into this copy of the infra folder",
    )
    check.set_defaults(func=run_check)
    lst = routes.add_parser("list", help="list routes, and each service's URLs in every stage")
    lst.add_argument("--infra", type=Path, default=Path("infra"), help=INFRA_HELP)
    lst.add_argument("--stage", default=None, help="the stage whose routes to list (default: the first)")
    lst.add_argument("--json", action="store_true", help="print JSON instead of tables")
    lst.set_defaults(func=run_list)


def check(loaded: Loaded) -> list[ConfigProblem]:
    """Every problem in the files, for every stage they declare."""
    stages = list(loaded.gateway.stages) if loaded.gateway else [None]
    problems: set[ConfigProblem] = set()
    for stage in stages:
        try:
            compile_loaded(loaded, stage, os.environ)
        except ConfigError as exc:
            problems.update(exc.problems)
    return sorted(problems)


def run_check(args: argparse.Namespace) -> int:
    if not (args.infra / "gateway.yaml").exists():
        missing = str(args.infra / "gateway.yaml")
        problems = [ConfigProblem(missing, 1, "file", "not an infra folder (no gateway.yaml)")]
        routes = 0
    else:
        loaded = load_infra(args.infra, Path.cwd())
        problems, routes = check(loaded), len(loaded.routes)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not problems,
                    "routes": routes,
                    "problems": [
                        {"file": p.file, "line": p.line, "subject": p.subject, "message": p.message}
                        for p in problems
                    ],
                },
                indent=2,
            )
        )
    else:
        for problem in problems:
            print(problem)
    if problems:
        if not args.json:
            print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    if not args.json:
        print(f"ok: {routes} route(s) in {args.infra}")
    if args.write_table is not None:
        return write_table(loaded, args.infra, args.write_table)
    return 0


def write_table(loaded: Loaded, infra: Path, copy: Path) -> int:
    """Each stage compiled without environment overrides (the function applies its own at load)."""
    from tollway.config import artifact

    assert loaded.gateway is not None and loaded.gateway_doc is not None
    if artifact.fingerprint(copy) != artifact.fingerprint(infra):
        print(f"{copy}: not a copy of {infra}: copy the infra folder first", file=sys.stderr)
        return 1
    configs = {stage: compile_loaded(loaded, stage, {}) for stage in loaded.gateway.stages}
    doc = loaded.gateway_doc
    lines = {
        name: (doc.file, doc.line(("stages", stage, "services", name)))
        for stage, spec in loaded.gateway.stages.items()
        for name in spec.services
    }
    artifact.write(copy, copy / artifact.TABLE_NAME, configs, lines)
    print(f"wrote {copy / artifact.TABLE_NAME}: {len(configs)} stage(s)")
    return 0


def stage_services(infra: Path, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each stage's services as the gateway would call them: gateway.yaml's targets with the
    `TOLLWAY_SERVICE_<NAME>` overrides of `environ` applied (`ssm:`/`cloudmap:` references are
    resolved by the function itself, at cold start)."""
    loaded = load_infra(infra, Path.cwd())
    stages = list(loaded.gateway.stages) if loaded.gateway else []
    return {stage: dict(compile_loaded(loaded, stage, environ).services) for stage in stages}


def run_list(args: argparse.Namespace) -> int:
    try:
        config = compile_infra(args.infra, args.stage, os.environ, Path.cwd())
        services = stage_services(args.infra, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    rows = [
        {
            "id": r.id,
            "team": r.team,
            "methods": sorted(r.methods - {"HEAD"} if "GET" in r.methods else r.methods),
            "path": r.path,
            "auth": "public" if r.public else ",".join(sorted(r.auth)),
            "scopes": sorted(r.scopes),
            "compose": r.compose,
            "backends": [f"{b.name}={b.service}" for b in r.backends],
            "cost": r.cost,
            # A metered route's cost is read from its answer: the weighted fields, e.g.
            # "usage.prompt_tokens + 3 * usage.completion_tokens".
            "metering": (
                " + ".join(f"{t.weight:f}".rstrip("0").rstrip(".") + f" * {t.name}" for t in r.metering.terms)
                if r.metering is not None
                else None
            ),
            "timeout_ms": int(r.timeout_s * 1000),
        }
        for r in config.routes
    ]
    if args.json:
        print(json.dumps({"stage": config.stage, "routes": rows, "services": services}, indent=2))
        return 0
    print_table(
        ("ID", "METHODS", "PATH", "AUTH", "COMPOSE", "BACKENDS"),
        [
            (r["id"], ",".join(r["methods"]), r["path"], r["auth"], r["compose"], " ".join(r["backends"]))
            for r in rows
        ],
    )
    print()
    names = sorted({name for urls in services.values() for name in urls})
    print_table(
        ("SERVICE", *(f"{stage} (listed)" if stage == config.stage else stage for stage in services)),
        [(name, *(urls.get(name, "-") for urls in services.values())) for name in names],
    )
    return 0


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
