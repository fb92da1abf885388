"""InferenceFunction: the model's Lambda function, its published version and the alias ``live``.

The function's environment carries MODEL_URI and MODEL_SHA256, so a new model (even with the same code and
layer) is a new configuration, hence a new version, hence a CodeDeploy deployment.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Size, SymlinkFollowMode
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from spec.environment import FunctionSettings
from spec.models import DeployedModel
from spec.rollout import ALIAS_NAME

from .artifacts import ArtifactLocation
from .layer import ARCHITECTURES
from .nag import acknowledge, acknowledge_python_runtime

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
HANDLER = "inference.handler.lambda_handler"
RUNTIME = lambda_.Runtime.PYTHON_3_12


FUNCTION_PACKAGES = ("inference", "acceptance", "monitor")


def functions_code(package: str) -> lambda_.Code:
    """The ``functions/`` folder with only ``package`` of the function packages, so that a change to one
    function's code publishes a new version of that function alone.

    On Lambda the package is top-level and cannot reach ``functions/catalog.py``: its own ``catalog.py`` is a
    symlink to it, which the asset materializes as a real file (SymlinkFollowMode.ALWAYS: "Copy all the files the
    symlinks point to", AWS CDK API reference, aws-cdk-lib.SymlinkFollowMode)."""
    others = [p for p in FUNCTION_PACKAGES if p != package]
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        exclude=["**/__pycache__", "**/*.pyc", *others],
        follow_symlinks=SymlinkFollowMode.ALWAYS,
    )


def support_function(
    scope: Construct,
    *,
    package: str,
    handler: str,
    description: str,
    role_description: str,
    layer: lambda_.ILayerVersion,
    architecture: str,
    timeout: Duration,
    environment: dict[str, str],
) -> tuple[lambda_.Function, iam.Role]:
    """One of modelrail's own functions beside the inference function (hooks, monitor): children Logs (a month),
    Role (writes those logs; the caller grants the rest) and Function, on the runtime layer."""
    log_group = logs.LogGroup(
        scope, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=role_description
    )
    function = lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURES[architecture],
        handler=handler,
        code=functions_code(package),
        layers=[layer],
        timeout=timeout,
        memory_size=1024,
        role=role,
        log_group=log_group,
        environment=environment,
    )
    log_group.grant_write(role)
    acknowledge_python_runtime(function)
    return function, role


class InferenceFunction(Construct):
    """Function + version + alias ``live``; the role writes its own logs (the parent grants the artifact read)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model: DeployedModel,
        artifact: ArtifactLocation,
        layer: lambda_.ILayerVersion,
        settings: FunctionSettings,
        capture_stream: str | None = None,
        capture_sample_rate: float = 0.0,
    ) -> None:
        super().__init__(scope, id_)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=getattr(logs.RetentionDays, _RETENTION[settings.log_retention_days]),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"modelrail inference for model {model.name}: read its artifact, write its logs",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"modelrail inference: model {model.name}",
            runtime=RUNTIME,
            architecture=ARCHITECTURES[settings.architecture],
            handler=HANDLER,
            code=functions_code("inference"),
            layers=[layer],
            memory_size=settings.memory_mb,
            ephemeral_storage_size=Size.mebibytes(settings.ephemeral_storage_mb),
            timeout=Duration.seconds(settings.timeout_seconds),
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=model.environment(
                artifact.uri,
                tracing=settings.tracing,
                capture_stream=capture_stream,
                sample_rate=capture_sample_rate,
            ),
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            # Init (the model fetched, verified and in its session) runs when a version is published; new
            # environments resume from its snapshot. The spec has refused what SnapStart does not support.
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snap_start else None,
            current_version_options=lambda_.VersionOptions(
                removal_policy=RemovalPolicy.RETAIN,  # CodeDeploy rolls back to the previous version
                description=f"model {model.name} sha256 {model.sha256}",
            ),
        )
        self.log_group.grant_write(self.role)
        acknowledge_python_runtime(self.function)
        if settings.tracing:
            acknowledge(
                self.role,
                "AwsSolutions-IAM5",
                "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions "
                "(Resource '*').",
                ["Resource::*"],
            )
        if artifact.dependable is not None:
            # The new version must not exist (and be invoked by the hook) before its model is uploaded.
            self.function.node.add_dependency(artifact.dependable)
        self.version = self.function.current_version
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=ALIAS_NAME,
            version=self.version,
            provisioned_concurrent_executions=settings.provisioned_concurrency or None,
        )


_RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
}
