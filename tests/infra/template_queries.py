"""Reading synthesized templates by meaning (types, properties, references), never by hashed logical ids."""

from __future__ import annotations

from typing import Any


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def only(template: dict[str, Any], type_: str, **properties: Any) -> tuple[str, dict[str, Any]]:
    """The single resource of ``type_`` whose properties include ``properties``."""
    found = [
        (k, v)
        for k, v in resources(template, type_).items()
        if all(v.get("Properties", {}).get(p) == value for p, value in properties.items())
    ]
    assert len(found) == 1, f"expected one {type_} with {properties}, found {len(found)}"
    return found[0]


def inference_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return only(template, "AWS::Lambda::Function", Handler="inference.handler.lambda_handler")


def pre_traffic_hook(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return only(template, "AWS::Lambda::Function", Handler="acceptance.pretraffic.handler")


def post_traffic_hook(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return only(template, "AWS::Lambda::Function", Handler="acceptance.posttraffic.handler")


def live_alias(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return only(template, "AWS::Lambda::Alias", Name="live")


def version_of_alias(template: dict[str, Any]) -> str:
    """The logical id of the Version the alias points at (read from the reference, not assumed)."""
    _, alias = live_alias(template)
    ref = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"]
    assert ref[1] == "Version"
    return ref[0]


def policy_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to ``role_id`` (AWS::IAM::Policy and Role Policies)."""
    statements = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    role = template["Resources"][role_id]
    for inline in role["Properties"].get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    return statements


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return value if isinstance(value, list) else [value]


def role_of(function: dict[str, Any]) -> str:
    return function["Properties"]["Role"]["Fn::GetAtt"][0]
