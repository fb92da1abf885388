"""A new model publishes a new Lambda version, and with it a CodeDeploy deployment; nothing else changes."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import SHA_A, SHA_B, Synthesized
from tests.infra.template_queries import inference_function, live_alias, resources, version_of_alias


def _versions(template: dict[str, Any]) -> set[str]:
    return set(resources(template, "AWS::Lambda::Version"))


def _env(template: dict[str, Any]) -> dict[str, Any]:
    return inference_function(template)[1]["Properties"]["Environment"]["Variables"]


def _without(template: dict[str, Any], *types: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] not in types}


def test_changing_only_the_model_file_publishes_a_new_version(
    production: dict[str, Any], model_variant: Synthesized
) -> None:
    variant = model_variant["production"]
    before, after = _env(production), _env(variant)
    assert before["MODEL_SHA256"] != after["MODEL_SHA256"]
    assert before["MODEL_URI"] != after["MODEL_URI"]  # a new content-addressed object, not an overwrite
    assert {k: v for k, v in before.items() if k not in ("MODEL_SHA256", "MODEL_URI")} == {
        k: v for k, v in after.items() if k not in ("MODEL_SHA256", "MODEL_URI")
    }
    # CloudFormation sees a Version resource it has never created: it publishes it, and the alias moves to it
    # through CodeDeploy (the alias keeps its UpdatePolicy).
    assert _versions(production).isdisjoint(_versions(variant))
    assert version_of_alias(variant) in _versions(variant)
    assert "CodeDeployLambdaAliasUpdate" in live_alias(variant)[1]["UpdatePolicy"]
    # Same code, same layer: only the model's upload and what follows from the version changed.
    code = inference_function(production)[1]["Properties"]["Code"]
    assert inference_function(variant)[1]["Properties"]["Code"] == code
    assert resources(production, "AWS::Lambda::LayerVersion") == resources(variant, "AWS::Lambda::LayerVersion")


def test_changing_only_the_sha256_of_a_uri_model_publishes_a_new_version(
    uri_models: tuple[Synthesized, Synthesized],
) -> None:
    a, b = (s["production"] for s in uri_models)
    assert (_env(a)["MODEL_SHA256"], _env(b)["MODEL_SHA256"]) == (SHA_A, SHA_B)
    assert _env(a)["MODEL_URI"] == _env(b)["MODEL_URI"] == "s3://models-example/iris/model.onnx"
    assert _versions(a).isdisjoint(_versions(b))
    # Nothing is uploaded for a URI model; the role reads exactly that object.
    assert resources(a, "Custom::CDKBucketDeployment") == {}


def test_an_unchanged_model_keeps_its_version(production: dict[str, Any], swapped: Synthesized) -> None:
    """The control for the tests above: synthesizing the same inputs again publishes nothing new."""
    assert _versions(production) == _versions(swapped["staging"])
