"""Read infra YAML with line numbers, and validate each file against its model.

Every problem is collected, none stops the others: a broken route does not hide the
next one, and the cross-file rules in `compile.py` still run on the routes that parsed.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tollway.config.errors import ConfigProblem
from tollway.config.models import Gateway, Plans, Route
from tollway.config.protos import ProtoSet, load_protos

Loc = tuple[str | int, ...]


@dataclass(slots=True)
class Document:
    """One YAML file: its data and the line where each node starts (1-based)."""

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int:
        while loc not in self.lines and loc:
            loc = loc[:-1]
        return self.lines.get(loc, 1)


@dataclass(slots=True)
class LoadedRoute:
    route: Route
    team: str
    file: str
    doc: Document
    loc: Loc  # where the route sits in its document

    def line(self, *sub: str | int) -> int:
        return self.doc.line(self.loc + sub)


@dataclass(slots=True)
class Loaded:
    gateway: Gateway | None
    gateway_doc: Document | None
    plans: Plans | None
    plans_doc: Document | None
    routes: list[LoadedRoute]
    problems: list[ConfigProblem]
    infra: Path
    protos: ProtoSet | None = None  # infra/protos compiled; None: no proto there


class _LineLoader(yaml.SafeLoader):
    pass


# Constructs scalars (ints, bools, strings) with YAML 1.1 safe rules; holds no document.
_SCALARS = _LineLoader("")


def read_document(path: Path, display: str, problems: list[ConfigProblem]) -> Document | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(display, 1, "file", f"cannot read: {exc}"))
        return None
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        line, what = yaml_problem(exc)
        problems.append(ConfigProblem(display, line, "file", f"invalid YAML: {what}"))
        return None
    doc = Document(display, None)
    if node is None:
        return doc
    doc.data = _build(node, (), doc, problems)
    return doc


def _build(node: yaml.Node, loc: Loc, doc: Document, problems: list[ConfigProblem]) -> Any:
    doc.lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                problems.append(
                    ConfigProblem(doc.file, key_node.start_mark.line + 1, "file", f"duplicate key {key!r}")
                )
            out[key] = _build(value_node, loc + (key,), doc, problems)
            doc.lines[loc + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), doc, problems) for i, item in enumerate(node.value)]
    try:
        return _SCALARS.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        line, what = yaml_problem(exc)
        problems.append(ConfigProblem(doc.file, line, "file", f"invalid YAML: {what}"))
        return None


_FOUND_CHAR = re.compile(r"found character '(.+)' that cannot start any token")


def yaml_problem(exc: yaml.YAMLError) -> tuple[int, str]:
    """A YAML error as (line, one sentence a config author can act on).

    PyYAML's own text names its parser's states ("expected <block end>, but found
    '<block mapping start>'") and spans several lines; the line given is where the fix
    goes: the opening quote or bracket of what was never closed, else where parsing stopped.
    """
    mark = getattr(exc, "problem_mark", None)
    start = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None) or ""
    line = mark.line + 1 if mark is not None else 1
    column = f"column {mark.column + 1}: " if mark is not None else ""
    opened = (start.line + 1, f"column {start.column + 1}: ") if start is not None else (line, column)
    found = _FOUND_CHAR.search(problem)
    if found and found.group(1) == "\\t":
        return line, f"{column}a tab character: YAML indents with spaces only"
    if found:
        return line, f"{column}{found.group(1)!r} cannot start a value: quote the value"
    if "end of stream" in problem and "quoted scalar" in context:
        return opened[0], f"{opened[1]}a quoted string starts here and is never closed"
    if problem.startswith("expected <block end>"):
        return line, f"{column}the indentation does not match the lines above it"
    if problem.startswith("expected ',' or ']'"):
        return opened[0], f"{opened[1]}a [ list starts here and is not closed with ]"
    if problem.startswith("expected ',' or '}'"):
        return opened[0], f"{opened[1]}a {{ mapping starts here and is not closed with }}"
    if problem.startswith("mapping values are not allowed"):
        return line, f"{column}unexpected ': ' (quote a value that holds ': ', or check the indentation)"
    if problem.startswith("could not find expected ':'"):
        return opened[0], f"{opened[1]}a key without ':' after it"
    if problem.startswith("found unknown escape character"):
        char = problem.rsplit(" ", 1)[-1].strip("'")
        advice = "use single quotes, or write \\\\"
        return line, f"{column}unknown escape \\{char} in a double-quoted string: {advice}"
    if "undefined alias" in problem:
        return line, f"{column}{problem.removeprefix('found ')}: no anchor of that name comes before it"
    if "constructor for the tag" in problem:
        tag = problem.rsplit(" ", 1)[-1].strip("'").replace("tag:yaml.org,2002:", "!!")
        return line, f"{column}unknown tag {tag}: only plain YAML values are read"
    if problem.startswith("expected the node content"):
        if "<stream end>" in problem:
            return line, f"{column}the file ends where a value was expected (a [ or {{ left open?)"
        return line, f"{column}a value was expected here, but found {_words(problem.rsplit(' ', 1)[-1])}"
    return line, f"{column}{_words(' '.join(problem.split()))}"


# The parser's token names, in the author's words.
_TOKENS = {
    "'<stream end>'": "the end of the file",
    "'<block mapping start>'": "a key",
    "'<block sequence start>'": "a list item",
    "'<block end>'": "the end of a block",
    "'?'": "a key",
    "'-'": "a list item ('-')",
}


def _words(text: str) -> str:
    for token, words in _TOKENS.items():
        text = text.replace(token, words)
    return text


def pydantic_problems(exc: ValidationError, doc: Document, base: Loc, subject: str) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = tuple(err["loc"])
        where = _dotted(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = f"unknown key {where!r}"
        elif kind == "missing":
            msg = f"missing key {where!r}"
        else:
            text = err["msg"].removeprefix("Value error, ")
            msg = f"{where}: {text}" if where else text
        problems.append(ConfigProblem(doc.file, doc.line(base + loc), subject, msg))
    return problems


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(model: type[BaseModel], doc: Document, subject: str, problems: list[ConfigProblem]):
    try:
        return model.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, doc, (), subject))
        return None


def load_infra(infra: Path, display_root: Path | None = None) -> Loaded:
    """Load gateway.yaml, plans.yaml and routes/*.yaml from `infra`, collecting problems."""
    problems: list[ConfigProblem] = []
    root = display_root if display_root is not None else infra.parent

    def display(path: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    gateway_doc = read_document(infra / "gateway.yaml", display(infra / "gateway.yaml"), problems)
    gateway = _validate(Gateway, gateway_doc, "gateway", problems) if gateway_doc else None
    plans_doc = read_document(infra / "plans.yaml", display(infra / "plans.yaml"), problems)
    plans = _validate(Plans, plans_doc, "plans", problems) if plans_doc else None

    routes: list[LoadedRoute] = []
    route_files = sorted((infra / "routes").glob("*.yaml")) + sorted((infra / "routes").glob("*.yml"))
    for path in route_files:
        doc = read_document(path, display(path), problems)
        if doc is not None:
            routes.extend(_route_file(doc, path.stem, problems))
    protos = load_protos(infra, display, problems)
    return Loaded(gateway, gateway_doc, plans, plans_doc, routes, problems, infra, protos)


def _route_file(doc: Document, stem: str, problems: list[ConfigProblem]) -> list[LoadedRoute]:
    data = doc.data
    subject = f"team {stem}"
    if not isinstance(data, dict):
        problems.append(ConfigProblem(doc.file, 1, subject, "expected a mapping with team and routes"))
        return []
    for key in data.keys() - {"team", "routes"}:
        problems.append(ConfigProblem(doc.file, doc.line((key,)), subject, f"unknown key {key!r}"))
    team = data.get("team")
    if team is None:
        problems.append(ConfigProblem(doc.file, 1, subject, "missing key 'team'"))
    elif team != stem:
        problems.append(
            ConfigProblem(
                doc.file,
                doc.line(("team",)),
                f"team {team}",
                f"team {team!r} does not match the file name (expected team: {stem})",
            )
        )
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list):
        problems.append(ConfigProblem(doc.file, doc.line(("routes",)), subject, "routes must be a list"))
        return []
    loaded = []
    for i, raw in enumerate(raw_routes):
        loc: Loc = ("routes", i)
        rid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{i + 1}"
        try:
            route = Route.model_validate(raw)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, doc, loc, f"route {rid}"))
            route = _without_unknown_keys(raw, exc)
            if route is None:
                continue
        loaded.append(LoadedRoute(route, stem, doc.file, doc, loc))
    return loaded


def _without_unknown_keys(raw: Any, exc: ValidationError) -> Route | None:
    """When unknown keys were a route's only problems, check the rest of it all the same."""
    errors = exc.errors(include_url=False)
    if any(e["type"] != "extra_forbidden" for e in errors):
        return None
    cleaned = copy.deepcopy(raw)
    for error in errors:
        *parents, key = error["loc"]
        node = cleaned
        for part in parents:
            node = node[part]
        node.pop(key, None)
    try:
        return Route.model_validate(cleaned)
    except ValidationError:
        return None
