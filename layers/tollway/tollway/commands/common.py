"""What every `tollway` command shares: the exit codes, one-line errors, and where the
AWS-facing commands (`keys`, `usage`) find their tables.

Exit codes, for every command:

    0    done
    1    it ran and failed, or found problems: invalid config, differences (`usage
         reconcile`, `routes diff`), an unknown plan or key, AWS or the emulator refusing
         or unreachable, a setting that is missing
    2    it cannot run as given: an unknown command or flag, a malformed value, a file,
         folder or port it was given that cannot be used
    130  interrupted (Ctrl-C); `tollway dev` stopped by SIGTERM exits 0 once it has shut down

Every error is one line on standard error, `tollway <command>: <what is wrong>`, and
names the flag or file that fixes it; `TOLLWAY_DEBUG=1` adds the traceback.

Where the tables are: `--stack NAME [--region R] [--profile P]` reads them from the
deployed stack's outputs (CloudFormation DescribeStacks); otherwise from the environment
(`TOLLWAY_KEYS_TABLE`, ...), which `.tollway/dev.env` fills when `tollway dev` runs in the
current folder.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130

DEV_ENV = Path(".tollway") / "dev.env"
STACK_VARIABLE = "TOLLWAY_STACK"  # the stack the tables came from, for the messages

# The stack's outputs (template.yaml `Outputs`) and the variables the commands read.
STACK_OUTPUTS = {
    "KeysTableName": "TOLLWAY_KEYS_TABLE",
    "KeySecretId": "TOLLWAY_KEY_SECRET_ID",
    "QuotaTableName": "TOLLWAY_QUOTA_TABLE",
    "UsageTableName": "TOLLWAY_USAGE_TABLE",
    "UsageQueueUrl": "TOLLWAY_USAGE_QUEUE_URL",
    "UsageDLQUrl": "TOLLWAY_USAGE_DLQ_URL",
    "PreTrafficHookName": "TOLLWAY_HOOK_FUNCTION",
}


class CommandError(Exception):
    """What the user must change, in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (argparse prints the usage block first)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(USAGE)


def add_stack_flags(parser: argparse.ArgumentParser, required: bool = False) -> None:
    title = "deployed stack" + ("" if required else " (default: the environment, or .tollway/dev.env)")
    aws = parser.add_argument_group(title)
    aws.add_argument(
        "--stack",
        metavar="NAME",
        required=required,
        help="the CloudFormation stack whose outputs name the tables, queue, secret and functions",
    )
    aws.add_argument("--region", metavar="R", help="the AWS region (default: AWS_REGION, else the profile's)")
    aws.add_argument("--profile", metavar="P", help="the AWS profile to use (default: AWS_PROFILE)")


def wants_aws(args: argparse.Namespace) -> bool:
    """Whether the command line names AWS itself (then `.tollway/dev.env` is not read)."""
    return any(getattr(args, flag, None) for flag in ("stack", "region", "profile"))


def load_dev_env(path: Path = DEV_ENV, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Fill unset variables from `.tollway/dev.env` (KEY=VALUE lines); the ones it set."""
    if not path.is_file():
        return {}
    applied = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if key not in environ:
                environ[key] = applied[key] = value
    return applied


def use_target(args: argparse.Namespace, environ: MutableMapping[str, str] = os.environ) -> None:
    """Point this process at the deployed stack the flags name, or check the dev emulator
    `.tollway/dev.env` named is still there. Before any AWS client is made."""
    from tollway import aws

    if getattr(args, "profile", None):
        environ["AWS_PROFILE"] = args.profile
    if getattr(args, "region", None):
        environ["AWS_DEFAULT_REGION"] = environ["AWS_REGION"] = args.region
    dev = getattr(args, "dev_env", None) or {}
    endpoint = dev.get("AWS_ENDPOINT_URL")
    if endpoint and not _answers(endpoint):
        raise CommandError(
            f"{DEV_ENV} points at the dev emulator {endpoint}, which does not answer: start `tollway dev` "
            f"in this folder, or delete {DEV_ENV} (or pass --stack NAME for a deployed stack)"
        )
    if wants_aws(args):
        aws.session.cache_clear()  # a session made before these flags applied would ignore them
    if not aws.session().region_name:
        raise CommandError("no AWS region: pass --region R or set AWS_REGION")
    if getattr(args, "stack", None):
        environ.update(stack_environment(args.stack))
        environ[STACK_VARIABLE] = args.stack


def stack_outputs(stack: str) -> dict[str, str]:
    from tollway import aws

    try:
        described = aws.client("cloudformation", config=None).describe_stacks(StackName=stack)
    except Exception as exc:
        # CloudFormation has no error code of its own for a missing stack: a ValidationError
        # whose message says it does not exist.
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            region = aws.session().region_name
            raise CommandError(f"no stack {stack!r} in {region} (check --stack and --region)") from None
        raise
    outputs = described["Stacks"][0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def stack_environment(stack: str) -> dict[str, str]:
    """The variables the commands read, from the stack's outputs."""
    outputs = stack_outputs(stack)
    return {variable: outputs[name] for name, variable in STACK_OUTPUTS.items() if name in outputs}


def need(variable: str, what: str, environ: MutableMapping[str, str] = os.environ) -> str:
    """A setting the command cannot work without; the one line says where it comes from."""
    value = environ.get(variable)
    if value:
        return value
    output = {v: k for k, v in STACK_OUTPUTS.items()}.get(variable)
    stack = environ.get(STACK_VARIABLE)
    if stack and output:
        raise CommandError(f"stack {stack!r} has no output {output} ({what}): deploy this template.yaml")
    raise CommandError(
        f"{variable} is not set ({what}): pass --stack NAME, run `tollway dev` in this folder, or export it"
    )


def _answers(url: str, timeout_s: float = 0.5) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def describe(exc: BaseException) -> tuple[str, int]:
    """An exception as the one line a user reads, and the exit code."""
    if isinstance(exc, CommandError):
        return str(exc), exc.code
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("botocore"):
        return _describe_botocore(exc, name), FAILED
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}", FAILED
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error: {name}: {first} (TOLLWAY_DEBUG=1 shows the traceback)", FAILED


_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError")
_AWS_FLAGS = "pass --profile P or set AWS_PROFILE (or sign in: aws configure, aws sso login)"


def _describe_botocore(exc: BaseException, name: str) -> str:
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return f"no AWS credentials: {_AWS_FLAGS}"
    if name in ("TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError"):
        return "the AWS SSO session has expired: run `aws sso login` (with --profile P if you use one)"
    if name == "NoRegionError":
        return "no AWS region: pass --region R or set AWS_REGION"
    if name == "ProfileNotFound":
        return f"{exc}: check --profile or AWS_PROFILE"
    if name in _UNREACHABLE:
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        if os.environ.get("AWS_ENDPOINT_URL"):
            return f"cannot reach {endpoint} (AWS_ENDPOINT_URL is set: is that emulator running?)"
        return f"cannot reach {endpoint}"
    code = error_code(exc)
    if code is not None:
        error: dict[str, Any] = exc.response.get("Error", {})  # type: ignore[attr-defined]
        operation = getattr(exc, "operation_name", "the call")
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return f"the AWS credentials have expired ({operation}): sign in again"
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException"):
            return f"AWS does not accept these credentials ({operation}): {_AWS_FLAGS}"
        message = " ".join(str(error.get("Message", "")).split())
        return f"AWS refused {operation}: {code}: {message}".rstrip(": ")
    first = str(exc).splitlines()[0] if str(exc) else name
    return f"AWS: {first}"
