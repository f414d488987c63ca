"""One cold start: import the router module, build the app, answer one event. Stdlib only here.

    python tests/bench/cold.py ROUTER_APP_PY EVENT_JSON [--report]

With --report, prints (as JSON) the modules the process loaded that a request does not need.
"""

from __future__ import annotations

import importlib.util
import json
import sys

# Loaded by a cold start, not needed to answer a request: they only cost init time.
NOT_FOR_REQUESTS = (
    "aws_xray_sdk",
    "uvicorn",
    "starlette",
    "moto",
    "pytest",
    "hypothesis",
    "tollway.cli",
    "tollway.commands",
    "tollway.dev",
    "s3transfer",
    "yaml",  # the route table is compiled at build time (tollway/config/artifact.py)
    "jwt",  # the bench's routes have no JWT issuer
    "cryptography",
    "grpc",  # loaded only for a table with gRPC routes (the bench's row 5 has none)
    "google.protobuf",
)


class Context:
    function_name = "RouterFunction"
    aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:RouterFunction"
    memory_limit_in_mb = 1024

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def main() -> None:
    path, event_path = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(event_path) as f:
        result = module.handler(json.load(f), Context())
    if result["statusCode"] != 200:
        raise SystemExit(f"first invocation answered {result['statusCode']}: {result.get('body')}")
    if "--report" in sys.argv:
        loaded = sorted({m for m in sys.modules for p in NOT_FOR_REQUESTS if m == p or m.startswith(p + ".")})
        roots = sorted(
            {m.split(".")[0] if not m.startswith("tollway.") else ".".join(m.split(".")[:2]) for m in loaded}
        )
        print(json.dumps({"not_for_requests": roots, "modules": len(sys.modules)}))


if __name__ == "__main__":
    main()
