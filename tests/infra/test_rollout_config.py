"""Each rollout kind becomes the CodeDeploy configuration it names (canary and linear as custom configs)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.rollout import deployment_config
from spec.rollout import RolloutPolicy


def config_of(policy: RolloutPolicy) -> tuple[dict[str, Any], str]:
    stack = cdk.Stack(cdk.App(), "Rollout")
    config = deployment_config(stack, "Config", policy)
    resources = Template.from_stack(stack).to_json().get("Resources", {})
    return resources, stack.resolve(config.deployment_config_name)


@pytest.mark.parametrize(
    ("policy", "routing"),
    [
        (
            RolloutPolicy(kind="canary", percentage=10, interval_minutes=5),
            {"Type": "TimeBasedCanary", "TimeBasedCanary": {"CanaryInterval": 5, "CanaryPercentage": 10}},
        ),
        (
            RolloutPolicy(kind="linear", percentage=20, interval_minutes=2),
            {"Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearInterval": 2, "LinearPercentage": 20}},
        ),
    ],
)
def test_stepped_rollouts_are_custom_configs(policy: RolloutPolicy, routing: dict[str, Any]) -> None:
    resources, _ = config_of(policy)
    (config,) = resources.values()
    assert config["Type"] == "AWS::CodeDeploy::DeploymentConfig"
    assert config["Properties"] == {"ComputePlatform": "Lambda", "TrafficRoutingConfig": routing}


def test_all_at_once_is_codedeploys_own_config() -> None:
    resources, name = config_of(RolloutPolicy(kind="all_at_once"))
    assert resources == {}
    assert name == "CodeDeployDefault.LambdaAllAtOnce"
