"""A stand-in for a deployed stack: template.yaml's tables and queues created by moto's
CloudFormation on the loopback moto server, with template.yaml's own Outputs.

moto's CloudFormation cannot run the SAM transform, create functions (no Docker here) or
generate a Secrets Manager secret, so the stack holds the data resources only; the key
secret is created beside it and its output given as a literal, and any other output
(functions) can be passed in `extra_outputs`. What the CLI reads is real: DescribeStacks
on the moto server, names that CloudFormation generated, tables and queues that exist.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import boto3
from tollway.dev.template import Intrinsic, read_template

ROOT = Path(__file__).resolve().parent.parent
DATA = {"AWS::DynamoDB::Table", "AWS::SQS::Queue"}


def _cfn(value: Any) -> Any:
    """The YAML short forms (`!Ref X`) in CloudFormation's JSON long forms."""
    if isinstance(value, Intrinsic):
        if value.tag == "Ref":
            return {"Ref": value.value}
        if value.tag == "GetAtt":
            return {"Fn::GetAtt": value.value.split(".") if isinstance(value.value, str) else value.value}
        return {f"Fn::{value.tag}": _cfn(value.value)}
    if isinstance(value, dict):
        return {k: _cfn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cfn(v) for v in value]
    return value


def data_stack_template(
    template: Path = ROOT / "template.yaml", extra_outputs: dict[str, str] | None = None
) -> str:
    source = read_template(template)
    resources = {k: v for k, v in source["Resources"].items() if v["Type"] in DATA}
    outputs = {
        name: {"Value": _cfn(spec["Value"])}
        for name, spec in source.get("Outputs", {}).items()
        if isinstance(spec["Value"], Intrinsic)
        and spec["Value"].tag == "Ref"
        and spec["Value"].value in resources
    }
    outputs.update({name: {"Value": value} for name, value in (extra_outputs or {}).items()})
    return json.dumps(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
            "Resources": _cfn(resources),
            "Outputs": outputs,
        }
    )


def deploy(
    moto_url: str, name: str, *, stage: str = "dev", extra_outputs: dict[str, str] | None = None
) -> dict[str, str]:
    """Create the stack; its outputs, by name."""
    secret = boto3.client("secretsmanager", endpoint_url=moto_url).create_secret(
        Name=f"{name}-KeySecret", SecretString=secrets.token_urlsafe(48)
    )
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_url)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=data_stack_template(
            extra_outputs={"KeySecretId": secret["ARN"], **(extra_outputs or {})}
        ),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
