"""RuntimeLayer: the onnxruntime + numpy layer, built without Docker by ``layers/build.py``."""

from __future__ import annotations

from aws_cdk import AssetHashType, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layers.build import LayerArtifact, build_layer

__all__ = ["LayerArtifact", "RuntimeLayer", "build_layer"]

ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class RuntimeLayer(Construct):
    """One layer version per architecture; its asset hash is the build's input hash, so it changes only
    when the requirements, the Python version or the build itself change."""

    def __init__(self, scope: Construct, id_: str, *, artifact: LayerArtifact) -> None:
        super().__init__(scope, id_)
        self.artifact = artifact
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(artifact.zip_path), asset_hash=artifact.input_hash, asset_hash_type=AssetHashType.CUSTOM
            ),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[ARCHITECTURES[artifact.architecture]],
            description=f"modelrail runtime: onnxruntime, numpy, powertools ({artifact.unzipped_mb:.0f} MB)",
            removal_policy=RemovalPolicy.RETAIN,  # versions a rollback may return to keep their layer
        )
