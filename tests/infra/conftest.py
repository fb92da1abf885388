"""Infra fixtures: each app is synthesized once per session and its templates shared by the tests.

The apps: ``main`` (cdk.json as is, cdk-nag on), ``swapped`` (staging and production trade spec values), and
``model_variant`` (production with only the model's bytes changed), plus two URI-only apps differing only in sha256.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
SHA_A = "a" * 64
SHA_B = "b" * 64


class Synthesized:
    """A synthesized app: its output directory and each stack's template as a dict."""

    def __init__(self, outdir: Path, templates: dict[str, dict[str, Any]]) -> None:
        self.outdir = outdir
        self.templates = templates

    def __getitem__(self, environment: str) -> dict[str, Any]:
        return self.templates[f"modelrail-{environment}"]


def synthesize(context: dict[str, Any], outdir: Path, *, nag: bool = False) -> Synthesized:
    from app import create_app

    app = create_app(context=context, outdir=str(outdir), base_dir=ROOT, nag=nag)
    assembly = app.synth()
    return Synthesized(outdir, {s.stack_name: s.template for s in assembly.stacks})


def context_with(**spec_changes: Any) -> dict[str, Any]:
    context = copy.deepcopy(CDK_CONTEXT)
    context["modelrail"].update(copy.deepcopy(spec_changes))
    return context


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Synthesized]:
    def run(name: str, context: dict[str, Any], *, nag: bool = False) -> Synthesized:
        return synthesize(context, tmp_path_factory.mktemp(name), nag=nag)

    return run


@pytest.fixture(scope="session")
def main(synth: Callable[..., Synthesized]) -> Synthesized:
    """cdk.json as committed, with cdk-nag: what `make synth` produces."""
    return synth("main", copy.deepcopy(CDK_CONTEXT), nag=True)


@pytest.fixture(scope="module", params=["staging", "production"])
def environment(request: pytest.FixtureRequest, main: Synthesized) -> tuple[str, dict[str, Any]]:
    """Each environment's template in turn: (name, template)."""
    return request.param, main[request.param]


@pytest.fixture(scope="session")
def production(main: Synthesized) -> dict[str, Any]:
    return main["production"]


@pytest.fixture(scope="session")
def staging(main: Synthesized) -> dict[str, Any]:
    return main["staging"]


@pytest.fixture(scope="session")
def swapped(synth: Callable[..., Synthesized]) -> Synthesized:
    """staging gets production's spec values and production staging's; nothing else changes."""
    environments = CDK_CONTEXT["modelrail"]["environments"]
    return synth(
        "swapped",
        context_with(environments={"staging": environments["production"], "production": environments["staging"]}),
    )


@pytest.fixture(scope="session")
def model_variant(synth: Callable[..., Synthesized], tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Production with the same bundle except model.onnx's bytes (a retrained model): code and layer unchanged."""
    import onnx

    bundle = tmp_path_factory.mktemp("variant") / "iris"
    shutil.copytree(ROOT / "models" / "iris", bundle)
    model = onnx.load(str(bundle / "model.onnx"))
    model.doc_string = "retrained"
    onnx.save(model, str(bundle / "model.onnx"))
    environments = {"production": CDK_CONTEXT["modelrail"]["environments"]["production"]}
    return synth("variant", context_with(models=[{"bundle": str(bundle)}], environments=environments))


def uri_context(sha256: str) -> dict[str, Any]:
    environments = {"production": CDK_CONTEXT["modelrail"]["environments"]["production"]}
    model = {"uri": "s3://models-example/iris/model.onnx", "sha256": sha256, "name": "iris", "max_batch_rows": 64}
    return context_with(models=[model], environments=environments)


@pytest.fixture(scope="session")
def uri_models(synth: Callable[..., Synthesized]) -> tuple[Synthesized, Synthesized]:
    """The same s3:// model URI declared with two different sha256 values."""
    return synth("uri-a", uri_context(SHA_A)), synth("uri-b", uri_context(SHA_B))
