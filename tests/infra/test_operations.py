"""What `modelrail status/rollback/history` read from a stack (its outputs), and the hotfix deploy flag."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import NoCredentialsError
from moto import mock_aws

from infra.audit import caller_identity, hotfix_log_line
from modelrail.operate.resources import OPERATIONS_OUTPUT_PREFIX
from spec.base import SpecError
from spec.rollout import HOTFIX_CONTEXT_KEY, parse_hotfix
from tests.infra.conftest import CDK_CONTEXT, Synthesized, context_with
from tests.infra.template_queries import inference_function, live_alias, only, resources


def resolved(value: Any) -> str:
    """An output value with each ``Ref`` written as ``<Ref:LogicalId>`` (Fn::Join evaluated)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<Ref:{value['Ref']}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolved(p) for p in parts)
    raise AssertionError(f"unexpected output value {value!r}")


def operations_output(template: dict[str, Any], model: str = "iris") -> dict[str, Any]:
    found = [
        json.loads(resolved(o["Value"]))
        for key, o in template["Outputs"].items()
        if key.startswith(OPERATIONS_OUTPUT_PREFIX)
    ]
    (description,) = [d for d in found if d["model"] == model]
    return description


def ref(value: str) -> str:
    assert value.startswith("<Ref:"), value
    assert value.endswith(">"), value
    return value[5:-1]


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_operations_output_names_the_models_resources(main: Synthesized, environment: str) -> None:
    template = main[environment]
    ops = operations_output(template)
    function_id, _ = inference_function(template)
    _, alias = live_alias(template)
    group_id, group = only(template, "AWS::CodeDeploy::DeploymentGroup")

    assert ref(ops["function"]) == function_id
    assert ops["alias"] == alias["Properties"]["Name"] == "live"
    assert ref(ops["deploymentGroup"]) == group_id
    assert group["Properties"]["ApplicationName"] == {"Ref": ref(ops["application"])}
    # Every alarm the deployment group stops on is listed under its spec name, and nothing else.
    stopping = {a["Name"]["Ref"] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]}
    listed = {name: ref(value) for name, value in ops["alarms"].items()}
    assert stopping <= set(listed.values())
    assert set(listed.values()) <= set(resources(template, "AWS::CloudWatch::Alarm"))
    assert {"model-error-rate", "non-finite-rate", "function-error-rate", "throttle-rate", "latency-p99"} <= set(listed)
    assert "Hotfix" not in template["Outputs"]


def test_rollout_config_is_named_in_the_outputs(main: Synthesized) -> None:
    assert operations_output(main["staging"])["deploymentConfig"] == "CodeDeployDefault.LambdaAllAtOnce"
    config_id, _ = only(main["production"], "AWS::CodeDeploy::DeploymentConfig")
    assert ref(operations_output(main["production"])["deploymentConfig"]) == config_id


@pytest.fixture(scope="session")
def hotfix(synth: Callable[..., Synthesized]) -> Synthesized:
    """Production deployed with -c modelrail.hotfix=<reason>, by a caller STS (moto) can name."""
    context = context_with(environments={"production": CDK_CONTEXT["modelrail"]["environments"]["production"]})
    context[HOTFIX_CONTEXT_KEY] = "NaN on long petals: ship the retrained model now"
    with mock_aws():
        return synth("hotfix", context)


def test_hotfix_deploys_all_at_once_under_its_own_config(hotfix: Synthesized, production: dict[str, Any]) -> None:
    template = hotfix["production"]
    config_id, config = only(template, "AWS::CodeDeploy::DeploymentConfig")
    assert config["Properties"] == {
        "ComputePlatform": "Lambda",
        "DeploymentConfigName": "modelrail-production-iris-hotfix",
        "TrafficRoutingConfig": {"Type": "AllAtOnce"},
    }
    group_id, group = only(template, "AWS::CodeDeploy::DeploymentGroup")
    assert group["Properties"]["DeploymentConfigName"] == {"Ref": config_id}
    assert operations_output(template)["deploymentConfig"] == f"<Ref:{config_id}>"
    # The alias update (the deployment of the new version) goes through that group, so under that config.
    _, alias = live_alias(template)
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"] == {"Ref": group_id}
    # The canary's config is gone for this deploy; without the flag it is what production uses.
    _, canary = only(production, "AWS::CodeDeploy::DeploymentConfig")
    assert canary["Properties"]["TrafficRoutingConfig"]["Type"] == "TimeBasedCanary"


def test_hotfix_keeps_the_acceptance_gate_and_the_alarms(hotfix: Synthesized, production: dict[str, Any]) -> None:
    def gate(template: dict[str, Any]) -> tuple[Any, ...]:
        _, alias = live_alias(template)
        _, group = only(template, "AWS::CodeDeploy::DeploymentGroup")
        hooks = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        return (
            sorted(hooks),
            len(group["Properties"]["AlarmConfiguration"]["Alarms"]),
            group["Properties"]["AutoRollbackConfiguration"],
        )

    hooks, alarms, rollback = gate(hotfix["production"])
    assert "BeforeAllowTrafficHook" in hooks
    assert alarms >= 5
    assert rollback["Enabled"] is True
    assert gate(hotfix["production"]) == gate(production)


def test_hotfix_output_names_who_asked_and_why(hotfix: Synthesized) -> None:
    value = hotfix["production"]["Outputs"]["Hotfix"]["Value"]
    assert value == "requested by arn:aws:sts::123456789012:user/moto: NaN on long petals: ship the retrained model now"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "give the reason for the hotfix"),
        ("fix", "at least 8 characters"),
        (True, "expected the reason as text"),
        ("line\nbreak in it", "should match pattern"),
    ],
)
def test_hotfix_flag_is_validated(value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message) as error:
        parse_hotfix(value)
    assert str(error.value).startswith(f"context {HOTFIX_CONTEXT_KEY}:")


def test_no_hotfix_without_the_flag() -> None:
    assert parse_hotfix(None) is None
    assert parse_hotfix("") is None


def test_hotfix_log_line_names_the_caller_or_says_it_is_unverified(monkeypatch: pytest.MonkeyPatch) -> None:
    class OfflineSts:
        def get_caller_identity(self) -> dict[str, str]:
            raise NoCredentialsError()

    monkeypatch.setenv("USER", "alice")
    offline = caller_identity(OfflineSts())
    assert offline == "unverified local user alice (no AWS caller identity: NoCredentialsError)"

    hotfix = parse_hotfix("NaN on long petals", requested_by=offline)
    assert hotfix is not None
    assert hotfix_log_line(hotfix, ["modelrail-production"]) == (
        "modelrail: HOTFIX requested by unverified local user alice (no AWS caller identity: NoCredentialsError): "
        "modelrail-production shift traffic all at once (the acceptance gate still runs; alarms still roll back). "
        "Reason: NaN on long petals"
    )


def test_hotfix_caller_from_another_account_than_the_deploy_is_flagged() -> None:
    class Sts:
        def get_caller_identity(self) -> dict[str, str]:
            return {"Arn": "arn:aws:iam::111111111111:user/bob", "Account": "111111111111"}

    assert caller_identity(Sts(), deploying_account="111111111111") == "arn:aws:iam::111111111111:user/bob"
    assert caller_identity(Sts(), deploying_account="222222222222") == (
        "arn:aws:iam::111111111111:user/bob (not the deploying account 222222222222: set AWS_PROFILE for the app "
        "rather than cdk --profile)"
    )


def test_a_bad_hotfix_flag_stops_the_synth_naming_the_flag(tmp_path: Path) -> None:
    from app import create_app

    context = context_with()
    context[HOTFIX_CONTEXT_KEY] = "yes"
    with pytest.raises(SpecError, match=r"^context modelrail.hotfix: give the reason for the hotfix"):
        create_app(context=context, outdir=str(tmp_path), nag=False)
