"""The lean credential and region lookup agrees with botocore's chain, and costs no boto3 import
when the environment holds the credentials (as on Lambda)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest
from tollway.aws import credentials, region

LAMBDA = {
    "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "token",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def botocore_chain(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    session = botocore.session.get_session()
    found = session.get_credentials()
    frozen = found.get_frozen_credentials() if found else None
    return (
        frozen.access_key,
        frozen.secret_key,
        frozen.token,
    ) if frozen else None, session.get_config_variable("region")


@pytest.mark.parametrize(
    "environ",
    [
        LAMBDA,
        {**LAMBDA, "AWS_SECURITY_TOKEN": "older"},  # botocore reads the older name first
        {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-2"},
    ],
)
def test_environment_credentials_are_the_ones_botocore_finds(environ, monkeypatch) -> None:
    expected_credentials, expected_region = botocore_chain(environ, monkeypatch)
    frozen = credentials(environ).get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == expected_credentials
    assert region(environ) == expected_region


def test_without_them_the_chain_is_botocores(tmp_path: Path, monkeypatch) -> None:
    # A profile in a shared credentials file: found by botocore's chain, not by the variables.
    shared = tmp_path / "credentials"
    shared.write_text("[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = fromfile\n")
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-south-1\n")
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(shared), "AWS_CONFIG_FILE": str(config)}
    expected_credentials, expected_region = botocore_chain(environ, monkeypatch)
    assert expected_credentials == ("AKIAFILE", "fromfile", None)
    frozen = credentials(environ).get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == expected_credentials
    assert region(environ) == expected_region == "ap-south-1"


def test_expiring_environment_credentials_are_left_to_botocore(monkeypatch) -> None:
    environ = {**LAMBDA, "AWS_CREDENTIAL_EXPIRATION": "2999-01-01T00:00:00Z"}
    botocore_chain(environ, monkeypatch)
    found = credentials(environ)
    assert type(found).__module__.startswith("botocore")  # refreshable: botocore refreshes it


def test_reading_the_lambda_environment_imports_no_boto3_or_botocore() -> None:
    code = (
        "import json, sys; from tollway.aws import credentials, region; "
        f"c = credentials({LAMBDA!r}); r = region({LAMBDA!r}); "
        "aws = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')); "
        "print(json.dumps([c.access_key, r, aws]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == ["ASIAEXAMPLE", "eu-west-1", []]


def test_no_region_anywhere_is_a_clear_error_not_a_guess(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    botocore_chain({"AWS_CONFIG_FILE": str(tmp_path / "none")}, monkeypatch)
    with pytest.raises(ValueError, match="no AWS region"):
        region({})
