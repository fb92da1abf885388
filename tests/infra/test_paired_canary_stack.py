"""The paired canary analysis in the synthesized stacks: its alarm stops the deployment, the prediction-mix alarm
only notifies, and the monitor may read the alias and invoke the model's versions, nothing more."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.aws_semantics import allows
from tests.infra.template_queries import (
    inference_function,
    only,
    policy_statements,
    pre_traffic_hook,
    resources,
    role_of,
    version_of_alias,
)

pytestmark = pytest.mark.infra


def _rollout_alarm(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (alarm_id, alarm["Properties"])
        for alarm_id, alarm in resources(template, "AWS::CloudWatch::Alarm").items()
        if f"(modelrail rollout alarm {name})" in alarm["Properties"]["AlarmDescription"]
    ]
    return found


def test_the_deployment_group_rolls_back_on_canary_disagreement_and_not_on_the_prediction_mix(
    environment: tuple[str, dict[str, Any]],
) -> None:
    _, template = environment
    (group,) = resources(template, "AWS::CodeDeploy::DeploymentGroup").values()
    stopping = {a["Name"]["Ref"] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]}
    disagreement_id, disagreement = _rollout_alarm(template, "canary-disagreement")
    divergence_id, divergence = _rollout_alarm(template, "prediction-divergence")
    assert disagreement_id in stopping
    assert divergence_id not in stopping
    # On the new version's own datapoints (never the old version's: that would block deploying its fix).
    assert disagreement["MetricName"] == "CanaryDisagreement"
    assert disagreement["Namespace"] == "modelrail"
    version = {"Fn::GetAtt": [version_of_alias(template), "Version"]}
    assert {"Name": "ModelVersion", "Value": version} in disagreement["Dimensions"]
    assert (disagreement["Statistic"], disagreement["Threshold"]) == ("Maximum", 10)
    assert disagreement["TreatMissingData"] == "notBreaching"  # too few compared requests: neither hold nor roll back
    # The prediction mix is a drift signal: it notifies the drift topic.
    topic_id, _ = only(template, "AWS::SNS::Topic")
    assert divergence["AlarmActions"] == [{"Ref": topic_id}]
    assert "AlarmActions" not in disagreement  # CodeDeploy acts on it
    # Operators see it by version beside the prediction mix.
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    assert "CanaryDisagreement" in json.dumps(dashboard["Properties"]["DashboardBody"])


def test_the_monitor_may_read_the_alias_and_invoke_the_model_s_versions_only(
    environment: tuple[str, dict[str, Any]],
) -> None:
    """IAM's evaluation of the monitor role's statements (an explicit Deny wins; AWS IAM User Guide, "Policy
    evaluation logic"); a version's ARN is the function's ARN qualified by its number, an alias's by its name
    (AWS Lambda Developer Guide, "Lambda function versions": qualified and unqualified ARNs)."""
    _, template = environment
    _, monitor = only(template, "AWS::Lambda::Function", Handler="monitor.handler.handler")
    statements = policy_statements(template, role_of(monitor))
    function_id, _ = inference_function(template)
    function = f"<{function_id}.Arn>"
    hook_id, _ = pre_traffic_hook(template)

    # Its invokes are bounded per run (PAIRED_MAX_REQUESTS), and a run ends before the schedule's next one starts.
    (rule,) = resources(template, "AWS::Events::Rule").values()
    every = int(rule["Properties"]["ScheduleExpression"].removeprefix("rate(").split()[0]) * 60
    assert monitor["Properties"]["Timeout"] <= every
    assert monitor["Properties"]["Environment"]["Variables"]["PAIRED_MAX_REQUESTS"] == "100"

    assert allows(statements, "lambda:GetAlias", f"{function}:live")
    for version in ("1", "7", "42"):
        assert allows(statements, "lambda:InvokeFunction", f"{function}:{version}"), version
    # Not through the alias (its answers mix the canary in), not $LATEST, not the bare function (= $LATEST).
    for qualifier in (":live", ":$LATEST", ""):
        assert not allows(statements, "lambda:InvokeFunction", f"{function}{qualifier}"), qualifier
    # Nothing else: no other function, no change to the alias or the function.
    assert not allows(statements, "lambda:InvokeFunction", f"<{hook_id}.Arn>:1")
    assert not allows(statements, "lambda:InvokeFunction", "arn:aws:lambda:eu-west-1:111122223333:function:other:1")
    for action in ("lambda:UpdateAlias", "lambda:UpdateFunctionConfiguration", "lambda:PublishVersion"):
        assert not allows(statements, action, f"{function}:live"), action
        assert not allows(statements, action, function), action
