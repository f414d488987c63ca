"""The functions as `sam build` lays them out, run in fresh interpreters (tests/lambda_host.py),
and loopback stand-ins for the two AWS APIs that cannot run here.

- `artifacts()`: each function's folder from `.aws-sam/build` when `sam build` ran on this
  code, else built now into a temporary folder by the same make target `sam build` runs
  (build.mk: the adapter, infra/ and its compiled route table).
- `host_layer()`: the layer's requirements installed for this machine. SAM builds the
  layer for arm64, whose compiled wheels (pydantic-core, orjson, ...) do not load on this
  x86_64 machine; the same pinned versions, for this machine, do.
- `Container`: one warm Lambda container of a built function, fed events.
- `FakeLambda`: Lambda's Invoke API on loopback, each function name served by a Container
  (moto runs functions in Docker, which does not run here).
- `FakeCodeDeploy`: PutLifecycleEventHookExecutionStatus on loopback (moto lacks it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tollway.config import artifact

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
HOST = Path(__file__).with_name("lambda_host.py")
FUNCTIONS = {"RouterFunction": "router", "UsageFunction": "usage", "PreTrafficHookFunction": "hook"}
# The Lambda runtime's version (template.yaml), when this machine has it (pyenv).
RUNTIME = Path.home() / ".pyenv" / "versions" / "3.13.0" / "bin" / "python3.13"


def runtime_python() -> str:
    return str(RUNTIME) if RUNTIME.exists() else sys.executable


def _fresh(folder: Path, source: str) -> bool:
    table = folder / "infra" / artifact.TABLE_NAME
    app = folder / "app.py"
    if not table.is_file() or not app.is_file():
        return False
    if app.read_bytes() != (ROOT / "functions" / source / "app.py").read_bytes():
        return False
    header = table.open("rb").readline().split()
    return len(header) == 2 and header[1].decode() == artifact.fingerprint(ROOT / "infra")


def artifacts(scratch: Path) -> dict[str, Path]:
    out = {}
    for name, source in FUNCTIONS.items():
        if _fresh(BUILD / name, source):
            out[name] = BUILD / name
            continue
        target = scratch / name
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["make", "--no-print-directory", f"build-{name}", f"ARTIFACTS_DIR={target}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "MAKEFLAGS": ""},
        )
        out[name] = target
    return out


def host_layer(python: str) -> list[Path]:
    """sys.path entries of the layer for `python`: its pinned requirements, then the package."""
    requirements = ROOT / "layers" / "tollway" / "requirements.txt"
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()[:16]
    deps = ROOT / ".tools" / "layer-host" / key
    if not (deps / ".installed").exists():
        shutil.rmtree(deps, ignore_errors=True)
        uv = ROOT / ".tools" / "uv" / "bin" / "uv"
        subprocess.run(
            [str(uv), "pip", "install", "--quiet", "--python", python, "--target", str(deps)]
            + ["-r", str(requirements)],
            check=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
        (deps / ".installed").touch()
    return [deps, ROOT / "layers" / "tollway"]


def lambda_env(function: str, **variables: str) -> dict[str, str]:
    """What Lambda gives every function (credentials, region, its name), and `variables`."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "POWERTOOLS_SERVICE_NAME": "tollway",
        "POWERTOOLS_METRICS_NAMESPACE": "Tollway",
        **variables,
    }


@dataclass
class Container:
    """A warm container of one built function: imported once, then fed events."""

    handler: str
    task_root: Path
    layer: list[Path]
    env: dict[str, str]
    python: str = field(default_factory=runtime_python)
    process: subprocess.Popen | None = None
    init_error: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Container:
        self.process = subprocess.Popen(
            [self.python, "-I", "-S", str(HOST), self.handler, str(self.task_root), *map(str, self.layer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log(),
            env=self.env,
            text=True,
        )
        assert self.process.stdout is not None
        first = json.loads(self.process.stdout.readline() or '{"init_error": {"errorMessage": "exited"}}')
        self.init_error = first.get("init_error")
        return self

    def _log(self) -> Any:
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"lambda-{os.getpid()}-{id(self)}.log"
        return self.log_path.open("w")

    def logs(self) -> str:
        return self.log_path.read_text()

    def invoke(self, event: dict[str, Any], trace_header: str | None = None) -> dict[str, Any]:
        """`{"result": ...}` or `{"error": {...}}`, as the runtime reports them."""
        if self.init_error is not None:
            return {"error": self.init_error}
        assert self.process is not None and self.process.stdin and self.process.stdout
        with self.lock:
            self.process.stdin.write(json.dumps({"event": event, "trace_header": trace_header}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            return {"error": {"errorType": "Runtime.ExitError", "errorMessage": "the container exited"}}
        return json.loads(line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler: type[BaseHTTPRequestHandler], owner: Any) -> tuple[_Server, str]:
    server = _Server(("127.0.0.1", 0), handler)
    server.owner = owner  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _LambdaApi(_Quiet):
    def do_POST(self) -> None:
        fake: FakeLambda = self.server.owner  # type: ignore[attr-defined]
        prefix, suffix = "/2015-03-31/functions/", "/invocations"
        if not (self.path.startswith(prefix) and self.path.endswith(suffix)):
            self._answer(404, b'{"message": "not an Invoke"}')
            return
        target = unquote(self.path[len(prefix) : -len(suffix)])
        event = json.loads(self._body() or b"null")
        fake.calls.append((target, event))
        container = fake.containers.get(target.split(":function:")[-1].split(":")[0])
        if container is None:
            message = {"Type": "User", "message": f"Function not found: {target}"}
            self._answer(404, json.dumps(message).encode(), {"x-amzn-errortype": "ResourceNotFoundException"})
            return
        answer = container.invoke(event)
        if "error" in answer:
            error = {k: v for k, v in answer["error"].items() if k != "stackTrace"}
            self._answer(200, json.dumps(error).encode(), {"x-amz-function-error": "Unhandled"})
        else:
            self._answer(200, json.dumps(answer["result"]).encode(), {"x-amz-executed-version": "1"})


@dataclass
class FakeLambda:
    """Invoke on loopback: `containers` by function name (an ARN's name, with any version)."""

    containers: dict[str, Container] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def start(self) -> str:
        self.server, self.url = _serve(_LambdaApi, self)
        return self.url

    def stop(self) -> None:
        self.server.shutdown()


class _CodeDeployApi(_Quiet):
    def do_POST(self) -> None:
        fake: FakeCodeDeploy = self.server.owner  # type: ignore[attr-defined]
        target = self.headers.get("x-amz-target", "")
        body = json.loads(self._body() or b"{}")
        if target != "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus":
            self._answer(400, json.dumps({"__type": "UnknownOperationException"}).encode())
            return
        fake.statuses.append((body["deploymentId"], body["lifecycleEventHookExecutionId"], body["status"]))
        answer = {"lifecycleEventHookExecutionId": body["lifecycleEventHookExecutionId"]}
        self._answer(200, json.dumps(answer).encode(), {"content-type": "application/x-amz-json-1.1"})


@dataclass
class FakeCodeDeploy:
    statuses: list[tuple[str, str, str]] = field(default_factory=list)

    def start(self) -> str:
        self.server, self.url = _serve(_CodeDeployApi, self)
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
