"""Install what the bench needs and is missing: wrk and nginx (apt), fast-gateway (npm), Starlette.

Each step is skipped when its tool is already there; a step that fails leaves the measures
that need it "not run", with the reason in the table.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

from tests.bench.procs import ROOT
from tests.bench.servers import nginx_binary

PEERS = ROOT / "tools" / "bench"


def _run(argv: list[str]) -> bool:
    print(f"bench setup: {' '.join(argv)}", file=sys.stderr, flush=True)
    return (
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False).returncode == 0
    )


def ensure_apt() -> list[str]:
    missing = [pkg for pkg, found in (("wrk", shutil.which("wrk")), ("nginx", nginx_binary())) if not found]
    if missing and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        if not _run(install):
            _run(["apt-get", "update"])
            _run(install)
    return [pkg for pkg, found in (("wrk", shutil.which("wrk")), ("nginx", nginx_binary())) if not found]


def ensure_fast_gateway() -> bool:
    if (PEERS / "node_modules" / "fast-gateway").exists():
        return True
    if shutil.which("npm") is None:
        return False
    return _run(["npm", "ci", "--prefix", str(PEERS), "--no-audit", "--no-fund"])


def ensure_starlette() -> bool:
    """The naive floor is a Starlette app; install it into this environment if it is missing."""
    if importlib.util.find_spec("starlette") is not None:
        return True
    uv = shutil.which("uv")
    argv = [uv, "pip", "install", "--python", sys.executable, "starlette"] if uv else None
    if argv is None or not _run(argv):
        _run([sys.executable, "-m", "pip", "install", "--quiet", "starlette"])
    importlib.invalidate_caches()
    return importlib.util.find_spec("starlette") is not None


def sniffio_ok() -> str | None:
    """None when sniffio imports; else why not (httpcore then retries the import per request)."""
    try:
        import sniffio  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure to import is the finding
        return f"{type(exc).__name__}: {exc}"
    return None
