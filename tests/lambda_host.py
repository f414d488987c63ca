"""A Lambda container for a built function, as the Python runtime (or `sam local`) runs one.

    python -I -S tests/lambda_host.py HANDLER TASK_ROOT LAYER_DIR...

Run with -I -S, the interpreter sees its standard library and nothing else: no site-packages,
no PYTHONPATH, not the tests' folder. This script then puts TASK_ROOT (the function's
folder under .aws-sam/build) and the layer folders on sys.path, in Lambda's order, imports
the handler's module once (the init), and serves invocations: one JSON line per event on
stdin, one JSON line per answer on the stdout it was started with — `{"result": ...}` or
`{"error": {"errorType", "errorMessage"}}` — after `{"ready": true}` or `{"init_error": ...}`.
Whatever the function prints or logs goes to stderr. Standard library only.
"""

import importlib
import json
import os
import sys
import traceback
import uuid


class Context:
    """The fields of a Lambda context the functions read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def _error(exc: BaseException) -> dict:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": traceback.format_exc()}


def main(argv: list[str]) -> int:
    handler_name, task_root, *layers = argv
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the function's own output (logs) goes to stderr
    sys.stdout = sys.stderr
    sys.path[:0] = [task_root, *layers]
    os.chdir(task_root)
    module_name, _, function_name = handler_name.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except BaseException as exc:  # noqa: BLE001 - Lambda reports an init failure on each invoke
        answers.write(json.dumps({"init_error": _error(exc)}) + "\n")
        answers.flush()
        return 1
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    for line in sys.stdin:
        request = json.loads(line)
        context = Context(name)
        if request.get("trace_header"):
            os.environ["_X_AMZN_TRACE_ID"] = request["trace_header"]  # as the runtime sets it per invoke
        try:
            answer = {"result": handler(request["event"], context), "request_id": context.aws_request_id}
        except Exception as exc:  # noqa: BLE001 - reported like Lambda's Unhandled error
            answer = {"error": _error(exc), "request_id": context.aws_request_id}
        answers.write(json.dumps(answer, default=str) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
