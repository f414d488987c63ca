"""Emulated AWS resources created from template.yaml itself, named after logical ids.

`tollway dev` and the tests call `provision(template, clients)`: every DynamoDB table,
SQS queue and generated Secrets Manager secret (a random value) the template declares is
created, and the functions' environment
variables are resolved against them, so there is no second list to keep in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Intrinsic:
    tag: str  # "Ref", "GetAtt", "Sub", ...
    value: Any


class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Intrinsic:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Intrinsic(suffix, value)


_CfnLoader.add_multi_constructor("!", _intrinsic)


def read_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass(slots=True)
class Provisioned:
    names: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value
    arns: dict[str, str] = field(default_factory=dict)  # logical id -> Arn
    environment: dict[str, str] = field(default_factory=dict)  # Globals + functions, resolved


def provision(
    template: dict[str, Any],
    dynamodb: Any,
    sqs: Any,
    parameters: dict[str, str] | None = None,
    secrets: Any = None,
) -> Provisioned:
    """`secrets`: a Secrets Manager client (default: one on the DynamoDB client's endpoint,
    with the environment's credentials)."""
    resources: dict[str, Any] = template.get("Resources", {})
    out = Provisioned()
    queues = {k: v for k, v in resources.items() if v.get("Type") == "AWS::SQS::Queue"}
    # Dead-letter queues first, so that a redrive policy can name them.
    for logical_id in sorted(queues, key=lambda k: "RedrivePolicy" in queues[k].get("Properties", {})):
        props = dict(queues[logical_id].get("Properties", {}))
        attributes = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds"):
            if key in props:
                attributes[key] = str(props[key])
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = _resolve(redrive["deadLetterTargetArn"], out, parameters or {})
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": target, "maxReceiveCount": int(redrive["maxReceiveCount"])}
            )
        url = sqs.create_queue(QueueName=logical_id, Attributes=attributes)["QueueUrl"]
        out.names[logical_id] = url
        out.arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        args: dict[str, Any] = {
            "TableName": logical_id,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        try:
            description = dynamodb.create_table(**args)["TableDescription"]
        except dynamodb.exceptions.ResourceInUseException:
            description = dynamodb.describe_table(TableName=logical_id)["Table"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=logical_id,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        out.names[logical_id] = logical_id
        out.arns[logical_id] = description["TableArn"]
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::SecretsManager::Secret":
            out.names[logical_id] = out.arns[logical_id] = _dev_secret(logical_id, dynamodb, secrets)
    params = {
        name: (parameters or {}).get(name, spec.get("Default", ""))
        for name, spec in template.get("Parameters", {}).items()
    }
    variables = dict(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    for resource in resources.values():
        if resource.get("Type") == "AWS::Serverless::Function":
            variables.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    for key, value in variables.items():
        try:
            resolved = _resolve(value, out, params)
        except KeyError:
            continue  # names a resource with nothing to emulate (a function's published version)
        if resolved != "":
            out.environment[key] = str(resolved)
    return out


def _dev_secret(logical_id: str, dynamodb: Any, client: Any) -> str:
    """A random value for a generated secret, made once per emulator; its ARN."""
    import secrets

    if client is None:
        import boto3

        # The emulator serves every service on one endpoint: the DynamoDB client's.
        client = boto3.client(
            "secretsmanager", endpoint_url=dynamodb.meta.endpoint_url, region_name=dynamodb.meta.region_name
        )
    value = secrets.token_urlsafe(48)
    try:
        return client.create_secret(Name=logical_id, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:
        return client.describe_secret(SecretId=logical_id)["ARN"]


def _resolve(value: Any, out: Provisioned, params: dict[str, str]) -> Any:
    if not isinstance(value, Intrinsic):
        return value
    if value.tag == "Ref":
        if value.value in params:
            return params[value.value]
        return out.names[value.value]
    if value.tag == "GetAtt":
        target = value.value.split(".") if isinstance(value.value, str) else value.value
        if target[1] == "Arn":
            return out.arns[target[0]]
        return out.names[target[0]]
    raise ValueError(f"tollway dev cannot resolve !{value.tag} in template environment")
