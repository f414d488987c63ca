"""The route table compiled at build time, so a Lambda cold start neither parses YAML nor
runs pydantic validation.

`sam build` runs `tollway routes check --write-table` (build.mk): the sources are checked
for every stage, and each stage's `CompiledConfig` is pickled into the function's copy of
the infra folder (`TABLE_NAME`). Pickle, because it carries whatever fields the compiled
dataclasses have, with no schema of its own to keep in step: the table holds only the
route table's own types (tollway.table; no pydantic model), so what is loaded is exactly
what `compile_infra` returns. A value that cannot be pickled as is says how to rebuild
itself (`RequestValidator.__reduce__` recompiles its JSON Schemas; a read-only mapping
becomes one again, see `_Pickler`).

The first line of the file is a header: a format version and a fingerprint of everything
the pickle depends on, i.e. every file of the infra folder and every module of the
`tollway` package (a field added to a compiled dataclass changes the code, so an old
table is never read into new classes). `load` checks it before unpickling:

    fresh       the pickled config of the stage, with `TOLLWAY_SERVICE_<NAME>` applied
    missing or stale (or no such stage)
                `TableStale` with the reason; `load_or_compile` then logs a warning and
                compiles the sources the slow way, which is always correct (the sources
                are the truth, and they ship next to the table)

The table is data written by our own build into our own package: unpickling it is no
more trusting than importing the code beside it. It is never read from anywhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tollway.config.compile import service_overrides
from tollway.config.errors import ConfigError, ConfigProblem
from tollway.config.protos import COMPILED, PROTOS, write_compiled
from tollway.table.routes import CompiledConfig

TABLE_NAME = ".compiled-routes.pickle"
FORMAT = b"tollway-route-table/1"
PACKAGE = Path(__file__).resolve().parent.parent  # the tollway package folder


class TableStale(Exception):
    """The compiled table cannot be used: why, in words fit for a log line."""


def fingerprint(infra: Path) -> str:
    """sha-256 over the infra folder's files and the tollway package's modules (not what the
    build writes: the table, and the protos' descriptors, which check their own sources)."""
    digest = hashlib.sha256()
    built = {TABLE_NAME, COMPILED}
    for root, pattern in ((infra, "*"), (PACKAGE, "*.py")):
        for path in sorted(p for p in root.rglob(pattern) if p.is_file() and p.name not in built):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class _Table:
    configs: Mapping[str, CompiledConfig]  # by stage
    service_lines: Mapping[str, tuple[str, int]]  # where each service is declared, for problems


def _read_only(items: dict[Any, Any]) -> MappingProxyType:
    return MappingProxyType(items)


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

    def reducer_override(self, obj: Any) -> Any:
        # The compiled tables are read-only views, which pickle cannot name: rebuild them.
        if type(obj) is MappingProxyType:
            return _read_only, (dict(obj),)
        return NotImplemented


def write(
    infra: Path,
    out: Path,
    configs: Mapping[str, CompiledConfig],
    service_lines: Mapping[str, tuple[str, int]],
) -> None:
    """Write the table of `configs` (compiled from `infra` with no environment overrides)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    grpc = (b.grpc for c in configs.values() for r in c.routes for b in r.backends if b.grpc is not None)
    method = next(grpc, None)
    if method is not None:  # for a stale table's slow path on a function without protoc
        write_compiled(infra / PROTOS, method.descriptors)
    header = FORMAT + b" " + fingerprint(infra).encode() + b"\n"
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(header)
        _Pickler(f).dump(_Table(dict(configs), dict(service_lines)))
    tmp.replace(out)


def load(infra: Path, stage: str, environ: Mapping[str, str] | None = None) -> CompiledConfig:
    """The stage's compiled config from `infra`'s table; raises `TableStale` or `ConfigError`."""
    path = infra / TABLE_NAME
    try:
        with path.open("rb") as f:
            header = f.readline().split()
            if len(header) != 2 or header[0] != FORMAT:
                raise TableStale(f"{path}: not a route table of format {FORMAT.decode()}")
            if header[1].decode() != fingerprint(infra):
                raise TableStale(
                    f"{path}: stale (the infra files or the tollway code changed since it was written)"
                )
            table: _Table = pickle.load(f)
    except FileNotFoundError:
        raise TableStale(f"{path}: missing (sam build writes it)") from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise TableStale(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    config = table.configs.get(stage)
    if config is None:
        raise TableStale(f"{path}: has no stage {stage!r}")
    return with_overrides(config, environ or {}, table.service_lines)


def load_or_compile(
    infra: Path, stage: str, environ: Mapping[str, str] | None = None, log: logging.Logger | Any = None
) -> CompiledConfig:
    """The compiled table if it is fresh, otherwise the sources compiled now (with a warning)."""
    try:
        return load(infra, stage, environ)
    except TableStale as exc:
        message = f"route table not used, compiling the infra sources (a slower cold start): {exc}"
        (log or logging.getLogger("tollway")).warning(message)
    from tollway.config.compile import compile_infra  # imports the YAML loader and pydantic

    return compile_infra(infra, stage, environ)


def with_overrides(
    config: CompiledConfig, environ: Mapping[str, str], service_lines: Mapping[str, tuple[str, int]]
) -> CompiledConfig:
    """`config` with the `TOLLWAY_SERVICE_<NAME>` targets of `environ`, as `compile_infra` applies them."""
    known = {*service_lines, *config.services}
    overrides, bad = service_overrides(known, environ)
    if bad:
        problems = []
        for key, service, message in bad:
            file, line = service_lines.get(service, ("gateway.yaml", 1))
            problems.append(ConfigProblem(file, line, "gateway", f"{key}: {message}"))
        raise ConfigError(problems)
    if not overrides:
        return config
    routes = tuple(
        dataclasses.replace(
            route,
            backends=tuple(
                dataclasses.replace(b, target=overrides[b.service]) if b.service in overrides else b
                for b in route.backends
            ),
        )
        for route in config.routes
    )
    services = {**config.services, **{name: str(target) for name, target in overrides.items()}}
    return dataclasses.replace(config, routes=routes, services=MappingProxyType(services))
