"""The synthesized templates judged by how AWS behaves across a real deploy and update: IAM evaluated over two
deploys, alarm expressions evaluated as CloudWatch would, who may publish to the drift topic, which routes reach
the function, what CloudFormation orders before the alias, and the gate on a first deploy."""

from __future__ import annotations

from typing import Any

import pytest

from spec.models import parse_spec
from tests.infra.aws_semantics import allows, evaluate_expression, resolve
from tests.infra.conftest import CDK_CONTEXT, Synthesized
from tests.infra.template_queries import (
    inference_function,
    live_alias,
    only,
    policy_statements,
    post_traffic_hook,
    pre_traffic_hook,
    resources,
    role_of,
    version_of_alias,
)

pytestmark = pytest.mark.infra
SPEC = parse_spec(CDK_CONTEXT["modelrail"])


def _artifact_arn(template: dict[str, Any]) -> str:
    _, function = inference_function(template)
    uri = resolve(function["Properties"]["Environment"]["Variables"]["MODEL_URI"])
    assert uri.startswith("s3://")
    return f"arn:aws:s3:::{uri.removeprefix('s3://')}"


def test_a_new_model_keeps_the_replaced_versions_artifact_readable(
    main: Synthesized, model_variant: Synthesized
) -> None:
    """All versions share the role, updated before the alias shifts: deploy B must still let the version serving
    model A (and every rollback target) read A's artifact, and nothing outside the model's own prefix."""
    first, second = main["production"], model_variant["production"]
    artifact_a, artifact_b = _artifact_arn(first), _artifact_arn(second)
    assert artifact_a != artifact_b, "the variant must be a different model (a new content-addressed key)"
    _, function = inference_function(second)
    statements = policy_statements(second, role_of(function))
    assert allows(statements, "s3:GetObject", artifact_b)
    assert allows(statements, "s3:GetObject", artifact_a), "the version still serving model A would answer 503"
    bucket_arn = artifact_a.rsplit("/models/", 1)[0]
    for elsewhere in (
        f"{bucket_arn}/models/other/{'0' * 64}.onnx",
        f"{bucket_arn}/models/iris-shadow/{'0' * 64}.onnx",
        f"{bucket_arn}/acceptance/iris/{'0' * 64}.jsonl",
        f"{bucket_arn}/capture/model=iris/x.json.gz",
        artifact_a.replace(bucket_arn, "arn:aws:s3:::someone-elses-bucket"),
    ):
        assert not allows(statements, "s3:GetObject", elsewhere), elsewhere
    assert not allows(statements, "s3:PutObject", artifact_a)
    assert not allows(statements, "s3:DeleteObject", artifact_a)


def _alarm(template: dict[str, Any], name: str) -> dict[str, Any]:
    (alarm,) = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if f"rollout alarm {name})" in a["Properties"].get("AlarmDescription", "")
    ]
    return alarm


@pytest.mark.parametrize(
    ("invocations", "throttles", "expected"),
    [
        (None, 12.0, 100.0),  # every call throttled: Lambda records Throttles and no Invocations
        (30.0, 10.0, 25.0),
        (40.0, None, 0.0),
        (None, None, None),  # an idle canary: no datapoint, neither rolled back nor held
    ],
)
def test_throttle_rate_alarm_fires_when_every_call_is_throttled(
    production: dict[str, Any], invocations: float | None, throttles: float | None, expected: float | None
) -> None:
    alarm = _alarm(production, "throttle-rate")
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    value = evaluate_expression(expression, {"invocations": invocations, "throttles": throttles})
    assert value == expected
    # The rehearsal evaluates the same definition with the spec's own rule: it must agree with CloudWatch.
    definition = {d.name: d for d in SPEC.environment("production").alarm_definitions()}["throttle-rate"]
    assert definition.value({"invocations": invocations, "throttles": throttles}) == expected
    periods = [value] * alarm["EvaluationPeriods"]
    state = definition.state(periods)
    assert state == ("ALARM" if expected and expected > alarm["Threshold"] else "OK")


def test_every_rate_expression_agrees_with_the_spec_rule(production: dict[str, Any]) -> None:
    """For each rate alarm and each pattern of present/missing metrics, CloudWatch's value is the rehearsal's."""
    for definition in SPEC.environment("production").alarm_definitions():
        if not definition.is_rate:
            continue
        expression = _alarm(production, definition.name)["Metrics"]
        (expression,) = [m["Expression"] for m in expression if "Expression" in m]
        ids = [m.id for m in definition.metrics]
        for mask in range(1 << len(ids)):
            datapoints = {i: (5.0 + n if mask >> n & 1 else None) for n, i in enumerate(ids)}
            assert evaluate_expression(expression, datapoints) == definition.value(datapoints), (definition.name, mask)


def test_cloudwatch_may_publish_drift_alarms_to_the_topic(production: dict[str, Any]) -> None:
    """A topic policy replaces SNS's default one: without an Allow for CloudWatch, no alarm notification arrives."""
    topic_id, _ = only(production, "AWS::SNS::Topic")
    (policy,) = [
        p["Properties"]
        for p in resources(production, "AWS::SNS::TopicPolicy").values()
        if {"Ref": topic_id} in p["Properties"]["Topics"]
    ]
    statements = policy["PolicyDocument"]["Statement"]
    topic_arn = f"<{topic_id}>"
    own_alarm = {
        "aws:SourceAccount": "111122223333",
        "aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:modelrail-production-drift",
    }
    cloudwatch = "cloudwatch.amazonaws.com"
    assert allows(statements, "sns:Publish", topic_arn, principal=cloudwatch, context=own_alarm)
    # Only for this account's alarms (SNS's confused-deputy guard), only CloudWatch, only over TLS.
    others = {"aws:SourceAccount": "444455556666", "aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:444455556666:alarm:x"}
    assert not allows(statements, "sns:Publish", topic_arn, principal=cloudwatch, context=others)
    assert not allows(statements, "sns:Publish", topic_arn, principal="events.amazonaws.com", context=own_alarm)
    plain = {**own_alarm, "aws:SecureTransport": "false"}
    assert not allows(statements, "sns:Publish", topic_arn, principal=cloudwatch, context=plain)
    # Every drift alarm notifies that topic.
    drift_alarms = [
        a["Properties"]
        for a in resources(production, "AWS::CloudWatch::Alarm").values()
        if "never rolls back" in a["Properties"].get("AlarmDescription", "")
    ]
    assert drift_alarms
    assert all(a["AlarmActions"] == [{"Ref": topic_id}] for a in drift_alarms)


def test_no_unauthenticated_route_reaches_the_function(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    open_methods = [
        m["Properties"]
        for m in resources(template, "AWS::ApiGateway::Method").values()
        if m["Properties"]["AuthorizationType"] == "NONE" and not m["Properties"].get("ApiKeyRequired", False)
    ]
    assert open_methods, "liveness stays open for load balancers and uptime checks"
    for method in open_methods:
        integration = method["Integration"]
        assert integration["Type"] == "MOCK", "an open route would invoke the function and dilute its rates"
        (response,) = integration["IntegrationResponses"]
        assert response["StatusCode"] == "200"
        assert response["ResponseTemplates"] == {"application/json": '{"live": true}'}


def test_the_alias_waits_for_the_hooks_alarms_and_the_first_deploy_gate(
    environment: tuple[str, dict[str, Any]],
) -> None:
    """CloudFormation orders by references in Properties; the alias names its hooks only in its UpdatePolicy."""
    _, template = environment
    _, alias = live_alias(template)
    depends_on = set(alias.get("DependsOn", []))
    pre_id, _ = pre_traffic_hook(template)
    post_id, _ = post_traffic_hook(template)
    (gate_id,) = resources(template, "Custom::ModelrailAcceptanceGate")
    assert {pre_id, post_id, gate_id} <= depends_on
    hooks = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert hooks["BeforeAllowTrafficHook"] == {"Ref": pre_id}
    assert hooks["AfterAllowTrafficHook"] == {"Ref": post_id}


def test_a_first_deploy_runs_the_gate_on_the_version_before_the_alias_exists(
    environment: tuple[str, dict[str, Any]],
) -> None:
    """On stack creation the alias is created directly (no CodeDeploy deployment, so no pre-traffic hook): the
    gate runs as a custom resource on the same function, against the version the alias will point at."""
    _, template = environment
    (gate,) = resources(template, "Custom::ModelrailAcceptanceGate").values()
    pre_id, _ = pre_traffic_hook(template)
    props = gate["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": [pre_id, "Arn"]}
    assert props["VersionArn"] == {"Ref": version_of_alias(template)}
    assert props["Model"] == "iris"


def test_one_api_gateway_account_setting_per_account_and_region(main: Synthesized) -> None:
    """AWS::ApiGateway::Account is one setting per account and region: declared twice, the last deploy wins and
    deleting either stack clears it for every API."""
    # cdk.json's environments name no account or region: both deploy to the CLI's, so they share one setting.
    declared = {name: len(resources(template, "AWS::ApiGateway::Account")) for name, template in main.templates.items()}
    assert {name: n for name, n in declared.items() if n} == {"modelrail-api-account": 1}
    for environment in ("staging", "production"):
        assert not resources(main[environment], "AWS::ApiGateway::Account")
        roles = resources(main[environment], "AWS::IAM::Role").values()
        assert not any("AmazonAPIGatewayPushToCloudWatchLogs" in str(role) for role in roles)


def test_hooks_may_read_the_deployment_they_judge(environment: tuple[str, dict[str, Any]]) -> None:
    _, template = environment
    for hook_id, hook in (pre_traffic_hook(template), post_traffic_hook(template)):
        statements = policy_statements(template, role_of(hook))
        application = resolve(
            next(iter(resources(template, "AWS::CodeDeploy::DeploymentGroup").values()))["Properties"][
                "ApplicationName"
            ]
        )
        group = f"arn:aws:codedeploy:eu-west-1:111122223333:deploymentgroup:{application}/some-group"
        assert allows(statements, "codedeploy:GetDeployment", group), hook_id
        assert not allows(
            statements, "codedeploy:GetDeployment", "arn:aws:codedeploy:eu-west-1:111122223333:deploymentgroup:x/y"
        )
