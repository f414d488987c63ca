"""The endpoint boto3 would call for DynamoDB, SQS and Secrets Manager, without importing it.

In botocore's order:

1. `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` skips 2 and 3;
2. `AWS_ENDPOINT_URL_<SERVICE>` (DYNAMODB, SQS, SECRETS_MANAGER), then `AWS_ENDPOINT_URL`;
3. the shared config file's `endpoint_url`: the profile's `services` section for the service,
   then the profile's own;
4. the regional endpoint of the region's partition (botocore's partitions.json), with
   `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT` (or `use_fips_endpoint` /
   `use_dualstack_endpoint` in the config file): `<service>[-fips].<region>.<suffix>`, the
   suffix `api.aws` (and its kin) for dual-stack, with the two exceptions the services'
   endpoint rules make (below). FIPS or dual-stack with a configured endpoint is refused, as
   botocore refuses it.

Environment variables are read from the mapping given; the config file (`AWS_CONFIG_FILE`,
else ~/.aws/config) only when it exists, through botocore's own reader, imported then: a
Lambda container has none and imports no botocore for its endpoints.

Not covered (each boto3 would do, none needed by the gateway): DynamoDB's account-ID
endpoints (`<account>.ddb.<region>.amazonaws.com`, used by boto3 when it knows the account
ID; the regional endpoint serves every account); the DynamoDB `local` pseudo-region; the
`-global` pseudo-regions. tests/unit/aws/test_endpoints.py checks every region botocore knows,
with and without FIPS and dual-stack, against botocore's own resolution.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

# The names botocore gives each service's variable (its service id, in upper snake case).
SERVICE_VARIABLES = {"dynamodb": "DYNAMODB", "sqs": "SQS", "secretsmanager": "SECRETS_MANAGER"}

# botocore/data/partitions.json: (name, region pattern, DNS suffix, dual-stack DNS suffix).
# A region no pattern matches is in "aws", as in botocore.
PARTITIONS = (
    ("aws", r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$", "amazonaws.com", "api.aws"),
    ("aws-cn", r"^cn\-\w+\-\d+$", "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
    ("aws-eusc", r"^eusc\-(de)\-\w+\-\d+$", "amazonaws.eu", "api.amazonwebservices.eu"),
    ("aws-iso", r"^us\-iso\-\w+\-\d+$", "c2s.ic.gov", "api.aws.ic.gov"),
    ("aws-iso-b", r"^us\-isob\-\w+\-\d+$", "sc2s.sgov.gov", "api.aws.scloud"),
    ("aws-iso-e", r"^eu\-isoe\-\w+\-\d+$", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
    ("aws-iso-f", r"^us\-isof\-\w+\-\d+$", "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
    ("aws-us-gov", r"^us\-gov\-\w+\-\d+$", "amazonaws.com", "api.aws"),
)
_REGION = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # a host label


def endpoint(service: str, environ: Mapping[str, str], region: str) -> str:
    """The endpoint boto3 would use for `service` ("dynamodb", "sqs", "secretsmanager");
    ValueError for a configuration boto3 would refuse too."""
    fips = _flag(environ, "AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint")
    dualstack = _flag(environ, "AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint")
    configured, source = _configured(service, environ)
    if configured:
        if fips or dualstack:
            variant = "AWS_USE_FIPS_ENDPOINT" if fips else "AWS_USE_DUALSTACK_ENDPOINT"
            raise ValueError(
                f"{variant} (or its config-file form) and a custom endpoint ({source}) cannot be "
                "combined: boto3 refuses it too; unset one of them"
            )
        return configured
    return regional(service, region, fips=fips, dualstack=dualstack)


def regional(service: str, region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """`service`'s endpoint in `region`, as botocore's endpoint rules for it build it."""
    if not _REGION.match(region):
        raise ValueError(f"not an AWS region: {region!r}")
    partition, suffix, dualstack_suffix = _partition(region)
    name = f"{service}-fips" if fips else service
    if fips and not dualstack and partition == "aws-us-gov" and service != "secretsmanager":
        name = service  # GovCloud's own DynamoDB and SQS endpoints are the FIPS ones
    # Secrets Manager's plain endpoints are its dual-stack ones in these partitions (China: not FIPS).
    if (dualstack and service == "secretsmanager") and (
        partition in ("aws", "aws-us-gov") or (partition == "aws-cn" and not fips)
    ):
        dualstack = False
    return f"https://{name}.{region}.{dualstack_suffix if dualstack else suffix}"


def _partition(region: str) -> tuple[str, str, str]:
    for name, pattern, suffix, dualstack_suffix in PARTITIONS:
        if re.match(pattern, region):
            return name, suffix, dualstack_suffix
    name, _, suffix, dualstack_suffix = PARTITIONS[0]
    return name, suffix, dualstack_suffix


def _flag(environ: Mapping[str, str], variable: str, setting: str) -> bool:
    value = environ.get(variable)
    if value is None:
        value = _config_variable(environ, setting)
    # botocore's reading: the text "true" in any case, or a true boolean.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _configured(service: str, environ: Mapping[str, str]) -> tuple[str | None, str]:
    if _flag(environ, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "ignore_configured_endpoint_urls"):
        return None, ""
    own = f"AWS_ENDPOINT_URL_{SERVICE_VARIABLES.get(service, service.upper())}"
    for variable in (own, "AWS_ENDPOINT_URL"):
        if environ.get(variable):
            return environ[variable], variable
    session = _config_session(environ)
    if session is None:
        return None, ""
    scoped = session.get_scoped_config()
    section = session.full_config.get("services", {}).get(scoped.get("services"), {})
    key = SERVICE_VARIABLES.get(service, service).lower()
    for found, where in (
        (section.get(key, {}).get("endpoint_url"), f"services {scoped.get('services')}: {key}"),
        (scoped.get("endpoint_url"), "the profile's endpoint_url"),
    ):
        if found:
            return found, f"config file, {where}"
    return None, ""


def _config_file(environ: Mapping[str, str]) -> str:
    return os.path.expanduser(environ.get("AWS_CONFIG_FILE") or "~/.aws/config")


def _config_session(environ: Mapping[str, str]) -> Any:
    """botocore's session, to read the shared config file; None when there is none."""
    if not os.path.isfile(_config_file(environ)):
        return None
    import botocore.session

    return botocore.session.get_session()


def _config_variable(environ: Mapping[str, str], name: str) -> Any:
    session = _config_session(environ)
    return session.get_config_variable(name) if session is not None else None
