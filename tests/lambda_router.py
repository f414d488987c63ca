"""`functions/router/app.py` as Lambda runs it: a fresh module per container, and a context."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

ROUTER = Path(__file__).resolve().parent.parent / "functions" / "router" / "app.py"
_containers = itertools.count()


class Context:
    """The fields of a Lambda context object that Mangum and the adapters read."""

    function_name = "RouterFunction"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:RouterFunction"
    memory_limit_in_mb = 512

    def __init__(self, aws_request_id: str = "c0ffee") -> None:
        self.aws_request_id = aws_request_id

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def load_router() -> ModuleType:
    """A new container: the adapter imported anew (its init reads the environment as set now)."""
    spec = importlib.util.spec_from_file_location(f"router_app_{next(_containers)}", ROUTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
