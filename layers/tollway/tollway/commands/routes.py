"""`tollway routes check|list|diff`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tollway.commands.common import CommandError, add_stack_flags, need, use_target
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
    diff = routes.add_parser(
        "diff",
        help="what a deploy would add, change or remove against a deployed stack's route table "
        "(exit 1 when anything differs)",
    )
    diff.add_argument("--infra", type=Path, default=Path("infra"), help=INFRA_HELP)
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    add_stack_flags(diff, required=True)
    diff.set_defaults(func=run_diff)


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


def run_diff(args: argparse.Namespace) -> int:
    """The local infra folder against the table deployed with the stack's router, which the
    pre-traffic hook function carries (tollway/deploy/routes.py)."""
    from tollway.deploy.routes import diff, summary

    use_target(args)
    holder = need("TOLLWAY_HOOK_FUNCTION", "the function that holds the deployed route table")
    deployed = deployed_routes(holder)
    try:
        local = summary(compile_infra(args.infra, deployed["stage"], {}, Path.cwd()))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise CommandError(f"{len(exc.problems)} problem(s) in {args.infra}: fix them first") from None
    changes = diff(deployed["routes"], local)
    if args.json:
        print(
            json.dumps(
                {
                    "stack": args.stack,
                    "stage": deployed["stage"],
                    "added": [{"id": r, **_where(local[r])} for r in changes.added],
                    "changed": {
                        r: {name: {"deployed": old, "local": new} for name, (old, new) in fields.items()}
                        for r, fields in changes.changed.items()
                    },
                    "removed": [{"id": r, **_where(deployed["routes"][r])} for r in changes.removed],
                },
                indent=2,
            )
        )
        return 1 if changes else 0
    where = f"stack {args.stack} (stage {deployed['stage']})"
    if not changes:
        print(f"no route changes against {where}")
        return 0
    counts = f"{len(changes.added)} added, {len(changes.changed)} changed, {len(changes.removed)} removed"
    print(f"{counts} against {where}")
    width = max(len(r) for r in [*changes.added, *changes.changed, *changes.removed])
    for route_id in changes.added:
        print(f"+ {route_id:<{width}}  {_line(local[route_id])}")
    for route_id, fields in changes.changed.items():
        for name, (old, new) in fields.items():
            print(f"~ {route_id:<{width}}  {name}: {json.dumps(old)} -> {json.dumps(new)}")
    for route_id in changes.removed:
        print(f"- {route_id:<{width}}  {_line(deployed['routes'][route_id])}")
    return 1


def deployed_routes(function: str) -> dict[str, Any]:
    from tollway import aws

    answer = aws.client("lambda", config=None).invoke(FunctionName=function, Payload=b'{"tollway": "routes"}')
    payload = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError") or not isinstance(payload, dict) or "routes" not in payload:
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise CommandError(f"{function} did not answer its route table: {message}")
    return payload


def _where(route: dict[str, Any]) -> dict[str, Any]:
    return {"methods": route["methods"], "path": route["path"]}


def _line(route: dict[str, Any]) -> str:
    return f"{','.join(route['methods'])} {route['path']}"
