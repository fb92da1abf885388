"""Staging and production differ only through their spec: swap the spec values and the stacks swap too."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.infra.conftest import Synthesized
from tests.infra.template_queries import resources


def _without_stack_name(template: dict[str, Any]) -> dict[str, Any]:
    """Undo the two places where CDK derives names from the construct path, which starts with the stack's name
    (the one thing that differs besides the spec): the tag a BucketDeployment puts on its bucket, and the
    logical ids of the API's Lambda permissions (renamed here after their content)."""
    text = json.dumps(template)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Permission":
            content = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).hexdigest()[:16]
            text = text.replace(f'"{logical_id}"', f'"Permission{content}"')
    template = json.loads(text)
    for resource in template["Resources"].values():
        tags = resource.get("Properties", {}).get("Tags")
        if resource["Type"] == "AWS::S3::Bucket" and tags:
            resource["Properties"]["Tags"] = [t for t in tags if not t["Key"].startswith("aws-cdk:cr-owned:")]
    return template


def test_staging_with_production_values_is_production(main: Synthesized, swapped: Synthesized) -> None:
    assert _without_stack_name(swapped["staging"]) == _without_stack_name(main["production"])
    assert _without_stack_name(swapped["production"]) == _without_stack_name(main["staging"])


def _differing(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    keys = set(a["Resources"]) | set(b["Resources"])
    types = {k: (a["Resources"].get(k) or b["Resources"][k])["Type"] for k in keys}
    return {types[k] for k in keys if a["Resources"].get(k) != b["Resources"].get(k)}


def test_the_environments_do_differ_where_their_specs_do(staging: dict[str, Any], production: dict[str, Any]) -> None:
    """The control: staging and production are not the same stack, and they differ in the spec's concerns only."""
    assert staging != production
    staging, production = _without_stack_name(staging), _without_stack_name(production)
    assert _differing(staging, production) <= {
        "AWS::CodeDeploy::DeploymentConfig",  # rollout policy
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::CloudWatch::Alarm",  # alarm thresholds and windows
        "AWS::Lambda::Function",  # memory
        "AWS::Lambda::Version",  # published from the function's configuration
        "AWS::Lambda::Alias",
        "AWS::Lambda::Permission",  # the API's permissions name the alias's version
        "AWS::IAM::Policy",  # the hook's grant names the version
        "AWS::Logs::LogGroup",  # retention
        "AWS::ApiGateway::Stage",  # throttling
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Method",
        "AWS::CloudWatch::Dashboard",  # shows the alarms
        "Custom::ModelrailAcceptanceGate",  # the first deploy's gate names the version
    }
    assert resources(production, "AWS::CodeDeploy::DeploymentConfig")
    assert not resources(staging, "AWS::CodeDeploy::DeploymentConfig")
