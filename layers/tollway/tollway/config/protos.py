"""The gRPC services' contracts: `infra/protos/**/*.proto`, compiled at build time (SPEC §7).

`tollway routes check` (and so `sam build`, build.mk) compiles every proto under
`infra/protos` with protoc from grpcio-tools, `infra/protos` as the include root and the
well-known types (`google/protobuf/*.proto`) beside it, into one FileDescriptorSet: the
serialized bytes protoc's `--descriptor_set_out --include_imports` writes. The route table
carries those bytes in each gRPC backend's `GrpcMethod`, so the function builds its message
classes from them at init (`tollway.upstream.grpc.codec`) and never runs protoc.

grpcio-tools is a development dependency (the project's `uv sync`), never in the Lambda
layer. So that a function whose built table is stale can still compile its sources (the
always-correct slow path of config/artifact.py), the build also writes the descriptors
beside the protos (`COMPILED`, headed by a digest of the .proto files): where protoc is
missing, sources whose digest matches are read from there; otherwise that is a config
problem that says what is missing.

Nothing here imports protobuf or grpcio-tools at module level: a route table that holds
`GrpcMethod`s loads this module, and a table without gRPC routes never does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollway.config.errors import ConfigProblem
from tollway.table.grpc import GrpcMethod, pool_of

PROTOS = "protos"  # the folder under infra/
COMPILED = ".compiled-protos.binpb"  # in a built function's infra/protos (config/artifact.py)
COMPILED_FORMAT = b"tollway-protos/1"
SUBJECT = "protos"
# `<package>.<Service>/<Method>`, as a backend's `grpc:` names a method.
METHOD_NAME = r"^([A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*$"
# protoc's diagnostics: `file.proto:LINE:COLUMN: message` or `file.proto: message`.
_AT_LINE = re.compile(r"^(?P<file>.+?\.proto):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")
_AT_FILE = re.compile(r"^(?P<file>.+?\.proto): (?P<message>.*)$")
# Messages whose JSON form is not an object of their fields (proto3 JSON mapping).
WELL_KNOWN = frozenset(
    f"google.protobuf.{name}"
    for name in (
        *("Any", "Duration", "Timestamp", "FieldMask", "Struct", "Value", "ListValue", "NullValue", "Empty"),
        *("DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value"),
        *("BoolValue", "StringValue", "BytesValue"),
    )
)


@dataclass(frozen=True, slots=True)
class ProtoSet:
    """What `infra/protos` compiled to; `descriptors` is None when it did not compile."""

    folder: str  # as problems name it, e.g. "infra/protos"
    descriptors: bytes | None


def load_protos(
    infra: Path, display: Callable[[Path], str], problems: list[ConfigProblem]
) -> ProtoSet | None:
    """Compile `infra/protos`; None when the folder holds no proto. Problems are appended."""
    root = infra / PROTOS
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto") if p.is_file())
    if not files:
        return None
    folder = display(root)
    if importlib.util.find_spec("grpc_tools") is None:
        built = read_compiled(root, files)
        if built is not None:
            return ProtoSet(folder, built)
        problems.append(
            ConfigProblem(
                folder,
                1,
                SUBJECT,
                "compiling the protos needs grpcio-tools, a development dependency of Tollway "
                "(`uv sync`); the Lambda layer does not carry it, the route table built by "
                "`sam build` carries the compiled descriptors",
            )
        )
        return ProtoSet(folder, None)
    descriptors, errors = compile_protos(root, files)
    for file, line, message in errors:
        problems.append(ConfigProblem(f"{folder}/{file}" if file else folder, line, SUBJECT, message))
    return ProtoSet(folder, descriptors if not errors else None)


def sources_digest(root: Path, files: list[str]) -> str:
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def write_compiled(root: Path, descriptors: bytes) -> None:
    """The descriptors beside the protos they came from (a built function's copy of them)."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto") if p.is_file())
    header = COMPILED_FORMAT + b" " + sources_digest(root, files).encode() + b"\n"
    (root / COMPILED).write_bytes(header + descriptors)


def read_compiled(root: Path, files: list[str]) -> bytes | None:
    """The descriptors the build wrote, if they were compiled from exactly these files."""
    try:
        data = (root / COMPILED).read_bytes()
    except OSError:
        return None
    header, _, descriptors = data.partition(b"\n")
    expected = COMPILED_FORMAT + b" " + sources_digest(root, files).encode()
    return descriptors if header == expected else None


def compile_protos(root: Path, files: list[str]) -> tuple[bytes | None, list[tuple[str, int, str]]]:
    """protoc (grpcio-tools) in a child process: its C++ side writes diagnostics to fd 2.

    Returns the FileDescriptorSet, or the errors as (file relative to `root`, line, message).
    """
    import subprocess
    import sys
    import tempfile

    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory(prefix="tollway-protos-") as tmp:
        out = Path(tmp) / "descriptors.binpb"
        argv = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={root}",
            f"--proto_path={well_known}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *files,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 0 and out.exists():
            return out.read_bytes(), []
    errors: list[tuple[str, int, str]] = []
    for raw in done.stderr.splitlines():
        text = raw.strip()
        if not text or ": warning: " in text:
            continue
        m = _AT_LINE.match(text) or _AT_FILE.match(text)
        if m is None:
            errors.append(("", 1, f"protoc: {text}"))
            continue
        file = m.group("file").removeprefix(str(root) + "/")
        line = int(m.groupdict().get("line") or 1)
        errors.append((file, line, m.group("message")))
    return None, errors or [("", 1, f"protoc failed (exit {done.returncode})")]


def resolve(protos: ProtoSet | None, name: str) -> GrpcMethod | str:
    """The method `name` (`<package>.<Service>/<Method>`), or why it cannot be called."""
    if protos is None:
        return f"no proto declares {name}: put the service's .proto files under infra/{PROTOS}/"
    assert protos.descriptors is not None
    service_name, _, method_name = name.partition("/")
    pool = pool_of(protos.descriptors)
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        package = service_name.rpartition(".")[0]
        if package and package not in _packages(protos.descriptors):
            return f"no proto in {protos.folder} declares package {package!r}"
        return f"no proto in {protos.folder} declares service {service_name!r}"
    method = service.methods_by_name.get(method_name)
    if method is None:
        return f"service {service_name} has no method {method_name!r}"
    if method.client_streaming:
        kind = "bidirectional streaming" if method.server_streaming else "client streaming"
        return f"{name} is a {kind} method: only unary and server-streaming methods can be routed"
    return GrpcMethod(
        name=name,
        request=method.input_type.full_name,
        response=method.output_type.full_name,
        server_streaming=method.server_streaming,
        descriptors=protos.descriptors,
    )


def _packages(descriptors: bytes) -> set[str]:
    """Every package the protos declare, and the packages that enclose them."""
    from google.protobuf import descriptor_pb2

    found: set[str] = set()
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptors).file:
        package = file.package
        while package:
            found.add(package)
            package = package.rpartition(".")[0]
    return found


def body_problems(method: GrpcMethod, body: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Fields a `body` template names that its request message lacks: (where, what)."""
    pool = pool_of(method.descriptors)
    return _message_problems(pool.FindMessageTypeByName(method.request), body, ())


def _message_problems(message: Any, value: Any, where: tuple[str | int, ...]) -> list[tuple[tuple, str]]:
    if message.full_name in WELL_KNOWN or not isinstance(value, dict):
        return []  # a template string or a well-known type's JSON form: checked per request
    fields = {f.json_name: f for f in message.fields} | {f.name: f for f in message.fields}
    problems: list[tuple[tuple, str]] = []
    for key, item in value.items():
        field_ = fields.get(key)
        if field_ is None:
            problems.append(((*where, key), f"{message.full_name} has no field {key!r}"))
            continue
        sub = field_.message_type
        if sub is None or sub.GetOptions().map_entry:
            continue
        items = item if isinstance(item, list) else [item]
        for i, one in enumerate(items):
            at = (*where, key, i) if isinstance(item, list) else (*where, key)
            problems += _message_problems(sub, one, at)
    return problems


# FieldDescriptor types (descriptor.proto's numbering) that proto3 JSON writes as numbers,
# and the 64-bit integers it writes as strings.
_NUMBERS = frozenset({1, 2, 5, 7, 13, 15, 17})  # double float int32 fixed32 uint32 sfixed32 sint32
_INT64S = frozenset({3, 4, 6, 16, 18})  # int64 uint64 fixed64 sfixed64 sint64


def repeated(field: Any) -> bool:
    """protobuf 7 has `is_repeated`; older versions only the label (3: LABEL_REPEATED)."""
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == 3


def answer_field_problem(method: GrpcMethod, path: str) -> str | None:
    """Why a metering path cannot read a number from the method's reply JSON, if it cannot."""
    message = pool_of(method.descriptors).FindMessageTypeByName(method.response)
    names = path.split(".")
    for depth, name in enumerate(names):
        if message.full_name in WELL_KNOWN:
            return None  # a Struct's members are not declared: read per answer
        fields = {f.json_name: f for f in message.fields}
        found = fields.get(name)
        if found is None:
            by_proto = {f.name: f.json_name for f in message.fields}.get(name)
            hint = f" (its JSON name is {by_proto!r})" if by_proto else ""
            return f"{path}: {message.full_name} has no field {name!r} in its JSON{hint}"
        last = depth == len(names) - 1
        if repeated(found):
            return f"{path}: {name} is a list"
        if last:
            if found.type in _INT64S:
                return (
                    f"{path}: {name} is a 64-bit integer, which proto3's JSON writes as a string, "
                    "and metering reads numbers: use a 32-bit integer or a double"
                )
            if found.type not in _NUMBERS:
                return f"{path}: {name} is not a number"
            return None
        if found.message_type is None:
            return f"{path}: {name} is not a message"
        message = found.message_type
    return None
