"""The floors of the `tollway` package (tests/imports_graph.py draws them: `make imports`).

No two parts import each other, directly or round a longer loop; the ground floor (the
request's vocabulary) imports nothing else of Tollway's; config imports only config, the
compiled route table and policies, and the floor; only the CLI imports the dev tools; only
the CLI and the dev tools import the tools, and only the dev tools the Lambda adapters.
"""

from __future__ import annotations

from tests.imports_graph import Edge, cycles, edges, graph

FLOOR = {"core", "errors"}
COMPILED = {"table", "policy"}


def _imports_of(part: str, found: list[Edge]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for edge in found:
        if edge.source == part:
            out.setdefault(edge.target, []).append(edge.where)
    return out


def test_no_two_parts_import_each_other() -> None:
    found = edges()
    loops = cycles(graph(found))
    where = [
        f"{e.source} -> {e.target} ({e.where})"
        for e in found
        for loop in loops
        if {e.source, e.target} <= set(loop)
    ]
    assert not loops, "import cycles between parts of tollway/:\n" + "\n".join(where)


def test_the_ground_floor_imports_nothing_else_of_tollways() -> None:
    found = edges()
    above = {
        f"{part} -> {target}: {where}"
        for part in FLOOR
        for target, where in _imports_of(part, found).items()
        if target not in FLOOR
    }
    assert not above


def test_the_compiled_table_and_policies_import_only_each_other_and_the_floor() -> None:
    found = edges()
    allowed = FLOOR | COMPILED
    above = {
        f"{part} -> {target}: {where}"
        for part in COMPILED
        for target, where in _imports_of(part, found).items()
        if target not in allowed
    }
    assert not above


def test_config_imports_only_config_the_compiled_table_and_policies_and_the_floor() -> None:
    imports = _imports_of("config", edges())
    assert not {target: where for target, where in imports.items() if target not in FLOOR | COMPILED}


def test_only_the_cli_imports_the_dev_tools() -> None:
    importers = {e.source for e in edges() if e.target in {"dev", "cli", "commands"}}
    assert importers <= {"cli", "commands"}


def test_the_tools_and_the_lambda_adapters_are_imported_by_nothing_below_them() -> None:
    """tollway/tools (blocking boto3 helpers) serve the CLI and the dev tools; tollway/functions
    (one Lambda adapter per function) is what functions/*/app.py imports, and the dev server
    runs the usage function through its adapter as Lambda would."""
    found = edges()
    assert {e.source for e in found if e.target == "tools"} <= {"commands", "dev"}
    assert {e.source for e in found if e.target == "functions"} <= {"dev"}
