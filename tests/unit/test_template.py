"""template.yaml as a platform team reads it: safe deploys, logs kept as long as the stack
says, limits, the alarms an operator needs, what survives a stack deletion, outputs the CLI
reads, and no permission that nothing uses (`sam validate --lint` runs in `make test`)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from tollway.commands.common import STACK_OUTPUTS
from tollway.dev.template import Intrinsic, read_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = read_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"]


def ref(value: Any) -> str | None:
    return value.value if isinstance(value, Intrinsic) and value.tag == "Ref" else None


def of_type(kind: str) -> dict[str, Any]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def alarms_on(namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        a["Properties"]
        for a in of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == namespace and a["Properties"].get("MetricName") == metric
    ]


def test_router_deploys_shift_traffic_gradually_and_roll_back_on_alarms() -> None:
    router = RESOURCES["RouterFunction"]["Properties"]
    preference = router["DeploymentPreference"]
    assert router["AutoPublishAlias"] == "live"
    assert ref(preference["Type"]) == "DeploymentType"
    assert TEMPLATE["Parameters"]["DeploymentType"]["Default"].startswith(("Canary", "Linear"))
    alarms = [ref(a) for a in preference["Alarms"]]
    assert set(alarms) == {"RouterAliasErrorsAlarm", "GatewayDeploy5xxAlarm", "GatewayLatencyAlarm"}
    assert ref(preference["Hooks"]["PreTraffic"]) == "PreTrafficHookFunction"
    errors = RESOURCES["RouterAliasErrorsAlarm"]["Properties"]
    assert {d["Name"] for d in errors["Dimensions"]} == {"FunctionName", "Resource"}  # the alias's errors
    assert ref(RESOURCES["GatewayLatencyAlarm"]["Properties"]["Threshold"]) == "LatencyAlarmMs"


def test_the_hook_may_invoke_the_new_version_and_report_only() -> None:
    hook = RESOURCES["PreTrafficHookFunction"]["Properties"]
    # SAM's CodeDeploy role may invoke only functions named CodeDeployHook_*.
    assert hook["FunctionName"].value.startswith("CodeDeployHook_")
    assert ref(hook["Environment"]["Variables"]["TOLLWAY_TARGET_VERSION"]) == "RouterFunction.Version"
    statements = [s for p in hook["Policies"] for s in p["Statement"]]
    assert {s["Action"] for s in statements} == {
        "lambda:InvokeFunction",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
    }
    invoke = next(s for s in statements if s["Action"] == "lambda:InvokeFunction")
    assert ref(invoke["Resource"]) == "RouterFunction.Version"


def test_every_function_logs_to_a_group_with_the_stack_s_retention() -> None:
    groups = of_type("AWS::Logs::LogGroup")
    named = {g["Properties"].get("LogGroupName", Intrinsic("Sub", "")).value for g in groups.values()}
    for function in FUNCTIONS:
        assert f"/aws/lambda/${{{function}}}" in named, function
    for group in groups.values():
        assert ref(group["Properties"]["RetentionInDays"]) == "LogRetentionDays"


def test_the_http_api_logs_every_request_and_is_throttled() -> None:
    api = RESOURCES["GatewayApi"]["Properties"]
    assert ref(api["AccessLogSettings"]["DestinationArn"]) is None  # a GetAtt of the log group's Arn
    assert api["AccessLogSettings"]["DestinationArn"].value == "GatewayAccessLogs.Arn"
    for field in ("requestId", "ip", "status", "responseLatency", "integrationError"):
        assert f'"{field}":' in api["AccessLogSettings"]["Format"]
    throttle = api["DefaultRouteSettings"]
    assert ref(throttle["ThrottlingRateLimit"]) == "ThrottlingRateLimit"
    assert ref(throttle["ThrottlingBurstLimit"]) == "ThrottlingBurstLimit"


def test_concurrency_is_bounded_by_parameters() -> None:
    reserved = RESOURCES["RouterFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved.tag == "If" and reserved.value[0] == "HasRouterReservedConcurrency"
    source = RESOURCES["UsageFunction"]["Properties"]["Events"]["UsageEvents"]["Properties"]
    assert ref(source["ScalingConfig"]["MaximumConcurrency"]) == "UsageMaxConcurrency"


def test_the_usage_path_has_its_alarms() -> None:
    (age,) = alarms_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert age["Dimensions"][0]["Value"].value == "UsageQueue.QueueName"
    for metric in ("Errors", "Throttles"):
        alarms = alarms_on("AWS/Lambda", metric)
        on_usage = [a for a in alarms if ref(a["Dimensions"][0]["Value"]) == "UsageFunction"]
        assert len(on_usage) == 1, metric
    (dlq,) = alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dlq["Dimensions"][0]["Value"].value == "UsageDLQ.QueueName"


def test_every_unsent_usage_line_is_counted_and_alarms() -> None:
    from tollway.recording.emitter import MARKER

    (metric_filter,) = of_type("AWS::Logs::MetricFilter").values()
    props = metric_filter["Properties"]
    assert ref(props["LogGroupName"]) == "RouterLogGroup"
    assert props["FilterPattern"] == f"{{ $.{MARKER} IS TRUE }}"  # the emitter's own marker
    (transform,) = props["MetricTransformations"]
    assert len(alarms_on(transform["MetricNamespace"], transform["MetricName"])) == 1


@pytest.mark.parametrize("resource", ["UsageDLQ", "KeySecret", "KeysTable", "UsageTable"])
def test_what_cannot_be_recreated_survives_stack_deletion(resource: str) -> None:
    assert RESOURCES[resource]["DeletionPolicy"] == "Retain"
    assert RESOURCES[resource]["UpdateReplacePolicy"] == "Retain"


def test_the_outputs_the_cli_reads_exist() -> None:
    assert set(STACK_OUTPUTS) <= set(TEMPLATE["Outputs"])


def _allowed(function: str) -> set[tuple[str, str]]:
    statements = [s for p in RESOURCES[function]["Properties"]["Policies"] for s in p["Statement"]]
    out = set()
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        out |= {(a, statement["Resource"].value) for a in actions}
    return out


def test_the_usage_function_may_do_exactly_what_it_does(aws: dict[str, str], moto_url: str) -> None:
    """Its calls, recorded while it records events (and an event seen twice), against its policy."""
    from tollway.functions.usage import build_handler
    from tollway.settings import Settings

    used: set[str] = set()
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_url)

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":  # IAM authorizes each item's own action
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "ConditionCheck": "ConditionCheckItem"}
            used.update(kinds[k] for item in params["TransactItems"] for k in item)
        else:
            used.add(model.name)

    dynamodb.meta.events.register("provide-client-params.dynamodb.*", record)
    handler = build_handler(Settings.from_environ(aws, ROOT / "infra"), dynamodb=dynamodb)
    event = {
        "version": 1,
        "event_id": uuid.uuid4().hex,
        "timestamp": datetime.now(UTC).isoformat(),
        "request_id": "r",
        "consumer_id": "acme",
        "plan": "pro",
        "route_id": "users.get",
        "method": "GET",
        "status": 200,
        "latency_ms": 1.0,
        "request_bytes": 0,
        "response_bytes": 2,
        "cost_units": 1,
        "admitted": True,
        "backends": [],
    }
    records = [{"messageId": str(i), "body": json.dumps(event)} for i in range(2)]
    assert handler({"Records": records}, None) == {"batchItemFailures": []}
    assert {(f"dynamodb:{name}", "UsageTable.Arn") for name in used} == _allowed("UsageFunction")
