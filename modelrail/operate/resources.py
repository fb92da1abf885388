"""A stack's models and the AWS resources each one runs on, read from the stack's ``Operations-<model>`` outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .aws import Aws, OperateError, explained

STACK_PREFIX = "modelrail"  # app.py names each environment's stack modelrail-<env>
OPERATIONS_OUTPUT_PREFIX = "Operations"  # CfnOutput id Operations-<model>; CDK drops the dash from the key


@dataclass(frozen=True)
class ModelResources:
    """What one model runs on: its function and alias, CodeDeploy application and group, rollout alarms."""

    model: str
    function: str
    alias: str
    application: str
    deployment_group: str
    deployment_config: str
    alarms: dict[str, str] = field(default_factory=dict)  # spec name (e.g. non-finite-rate) -> CloudWatch name


@dataclass(frozen=True)
class StackResources:
    stack: str
    region: str
    models: dict[str, ModelResources]
    hotfix: str | None = None  # the Hotfix output of the last deploy, when it was one

    def select(self, model: str | None) -> list[ModelResources]:
        if model is None:
            return list(self.models.values())
        if model not in self.models:
            raise OperateError(f"no model {model!r} in stack {self.stack}; it has: {', '.join(sorted(self.models))}")
        return [self.models[model]]


def stack_name(*, stack: str | None, env: str | None) -> str:
    if stack:
        return stack
    if env:
        return f"{STACK_PREFIX}-{env}"
    raise OperateError("give the stack: --env ENV (the stack modelrail-ENV) or --stack NAME")


def read_stack(aws: Aws, name: str) -> StackResources:
    region = aws.region
    with explained(f"reading stack {name}"):
        try:
            stacks = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
                raise OperateError(
                    f"stack {name!r} not found in {region}: deploy it (npx aws-cdk@2 deploy {name}), or name the "
                    "right one with --stack/--env and the right region with --region or AWS_REGION"
                ) from None
            raise
    return parse_outputs(name, region, stacks[0].get("Outputs", []))


def parse_outputs(name: str, region: str, outputs: list[dict[str, Any]]) -> StackResources:
    models: dict[str, ModelResources] = {}
    hotfix = None
    for output in outputs:
        key, value = output["OutputKey"], output["OutputValue"]
        if key == "Hotfix":
            hotfix = value
        if not key.startswith(OPERATIONS_OUTPUT_PREFIX):
            continue
        try:
            data = json.loads(value)
            resources = ModelResources(
                model=data["model"],
                function=data["function"],
                alias=data["alias"],
                application=data["application"],
                deployment_group=data["deploymentGroup"],
                deployment_config=data["deploymentConfig"],
                alarms=dict(data.get("alarms", {})),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise OperateError(f"stack {name}: output {key} is not a modelrail operations record ({exc})") from None
        models[resources.model] = resources
    if not models:
        raise OperateError(
            f"stack {name!r} has no {OPERATIONS_OUTPUT_PREFIX}-<model> outputs: it is not a modelrail stack, or was "
            "deployed before modelrail could operate it (deploy it again)"
        )
    return StackResources(name, region, models, hotfix)
