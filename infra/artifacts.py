"""ModelArtifacts: the bucket that holds the models, and each bundle's model and acceptance set uploaded
content-addressed.

Keys are ``models/<name>/<sha256>.onnx`` and ``acceptance/<name>/<sha256>.jsonl``: a new file is a new object,
never an overwrite, and older objects stay (no pruning) so a rolled-back version still finds its model.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from spec.bundle import artifact_prefix
from spec.models import DeployedModel
from spec.permissions import artifact_versions, read_artifact_versions

from .nag import acknowledge

_S3_URI_PREFIX = "s3://"


@dataclass(frozen=True)
class ArtifactLocation:
    """Where one object lives, and what reading it takes."""

    bucket_name: str
    key: str
    dependable: Construct | None = None  # the upload, when this stack performs it
    prefix: str | None = None  # the folder that holds every version of this object, when there is one

    @property
    def uri(self) -> str:
        return f"{_S3_URI_PREFIX}{self.bucket_name}/{self.key}"

    def grant_read(self, grantee: iam.IGrantable, scope: Construct) -> None:
        """s3:GetObject on this one object, nothing else in the bucket."""
        self._grant(grantee, scope, prefix=None)

    def grant_read_versions(self, grantee: iam.IGrantable, scope: Construct) -> None:
        """s3:GetObject on every version of this object (its prefix), nothing else in the bucket.

        What a Lambda function's role needs: the role is shared by all of the function's versions and updated
        before the alias shifts, so the version still serving, and every rollback target, must keep reading the
        artifact it was published with.
        """
        self._grant(grantee, scope, prefix=self.prefix)
        if self.prefix and isinstance(grantee, Construct):
            bucket = Stack.of(scope).resolve(self.bucket_name)
            shown = f"<{bucket['Ref']}>" if isinstance(bucket, dict) and "Ref" in bucket else bucket
            acknowledge(
                grantee,
                "AwsSolutions-IAM5",
                "Every version of the function shares this role: the one serving now and each rollback target read "
                "the model they were published with, all under this model's content-addressed prefix.",
                [f"Resource::arn:<AWS::Partition>:s3:::{shown}/{artifact_versions(self.key, self.prefix)}"],
            )

    def _grant(self, grantee: iam.IGrantable, scope: Construct, *, prefix: str | None) -> None:
        # One definition with the local environment, which enforces the same statement on its workers' S3 calls.
        statement = read_artifact_versions(
            self.bucket_name, self.key, prefix=prefix, partition=Stack.of(scope).partition
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(statement.actions), resources=list(statement.resources))
        )


def private_bucket(scope: Construct, id_: str, *, access_logs: s3.IBucket, logs_prefix: str, **extra: Any) -> s3.Bucket:
    """Encrypted, never public, TLS only, owner-enforced, kept when the stack goes, its access logged."""
    return s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=logs_prefix,
        **extra,
    )


class ModelArtifacts(Construct):
    """A private, versioned, encrypted, TLS-only bucket kept on stack deletion, with the models in it."""

    def __init__(self, scope: Construct, id_: str, *, models: Sequence[DeployedModel]) -> None:
        super().__init__(scope, id_)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        self.bucket = private_bucket(
            self, "Bucket", access_logs=self.access_logs, logs_prefix="artifacts/", versioned=True
        )
        self.locations: dict[str, ArtifactLocation] = {}
        self.acceptance_locations: dict[str, ArtifactLocation] = {}
        self.baseline_locations: dict[str, ArtifactLocation] = {}
        for model in models:
            self._place(model)

    def _place(self, model: DeployedModel) -> None:
        if model.uri is not None:
            bucket, key = model.uri[len(_S3_URI_PREFIX) :].split("/", 1)
            # A model given by URI: its versions are taken to live beside it, in the key's folder.
            folder = key.rpartition("/")[0]
            self.locations[model.name] = ArtifactLocation(bucket, key, prefix=f"{folder}/" if folder else None)
            return
        upload = s3deploy.BucketDeployment(
            self,
            f"Upload-{model.name}",
            sources=[s3deploy.Source.asset(str(_staged(model)))],
            destination_bucket=self.bucket,
            prune=False,  # older models stay: a rollback needs the one its version was published with
            retain_on_delete=True,
            memory_limit=1024,
        )
        self.locations[model.name] = ArtifactLocation(
            self.bucket.bucket_name, model.artifact_key, upload, prefix=artifact_prefix(model.name)
        )
        if model.acceptance_key is not None:
            self.acceptance_locations[model.name] = ArtifactLocation(
                self.bucket.bucket_name, model.acceptance_key, upload
            )
        if model.baseline_key is not None:
            self.baseline_locations[model.name] = ArtifactLocation(self.bucket.bucket_name, model.baseline_key, upload)


def _staged(model: DeployedModel) -> Path:
    """A folder tree holding the model (and acceptance set) under their content-addressed keys: the asset
    whose extraction at the bucket's root lands each file on its key."""
    assert model.bundle is not None
    folder = (
        Path(tempfile.gettempdir())
        / "modelrail-artifacts"
        / f"{model.name}-{model.sha256}-{model.acceptance_sha256}-{model.baseline_sha256}"
    )
    files = {model.artifact_key: model.bundle.model_path}
    if model.acceptance_key is not None and model.bundle.acceptance_path is not None:
        files[model.acceptance_key] = model.bundle.acceptance_path
    if model.baseline_key is not None and model.bundle.baseline_path is not None:
        files[model.baseline_key] = model.bundle.baseline_path
    for key, source in files.items():
        target = folder / key
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(source, partial)
            partial.replace(target)
    return folder
