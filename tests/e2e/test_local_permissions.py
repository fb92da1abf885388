"""Local workers read their artifact with the deployed inference role: a role that cannot read the replaced
version's model makes that version answer 503 in the rehearsal, as it would in AWS (issue 10, fault 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.local.aws import ARTIFACT_BUCKET
from modelrail.local.environment import LocalCloud, LocalDeployment
from modelrail.local.worker import LambdaWorker
from spec.bundle import ModelBundle
from spec.models import DeployedModel
from spec.permissions import Statement, read_artifact_versions
from tests import builders
from tests.utils import answer_of, rest_event

ROW = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [4.0, 16.0]}]}


def root_bundle(folder: Path, name: str = "root", *, replacement: bool = False) -> ModelBundle:
    """y = sqrt(x), or for the replacement y = x: the same signature, a different content-addressed artifact."""
    folder.mkdir(parents=True)
    (builders.identity(folder / "model.onnx", "FP32") if replacement else builders.square_root(folder / "model.onnx"))
    (folder / "modelrail.json").write_text(json.dumps({"name": name, "description": folder.name}))
    return ModelBundle.load(folder)


def newest_artifact_only(model: DeployedModel) -> tuple[Statement, ...]:
    """The first release's grant: s3:GetObject on the artifact being deployed, nothing else."""
    return (read_artifact_versions(ARTIFACT_BUCKET, model.artifact_key, prefix=None),)


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        yield cloud


def two_versions(cloud: LocalCloud, tmp_path: Path) -> tuple[LambdaWorker, LambdaWorker]:
    """Deploy the version serving now, then its replacement, and start both as the rehearsal does."""
    old = cloud.deploy(root_bundle(tmp_path / "old"))
    new = cloud.deploy(root_bundle(tmp_path / "new", replacement=True))
    assert old.model.artifact_key != new.model.artifact_key
    return cloud.start_worker(old, "1"), cloud.start_worker(new, "2")


def infer(worker: LambdaWorker) -> tuple[int, str]:
    answer = answer_of(worker.invoke(rest_event("POST", "/v2/models/root/infer", ROW)).response)
    return answer.status, answer.error


def test_a_role_narrowed_to_the_new_artifact_starves_the_replaced_version(cloud: LocalCloud, tmp_path: Path) -> None:
    cloud.roles.grants = newest_artifact_only
    old, new = two_versions(cloud, tmp_path)
    status, error = infer(old)
    # S3 answers an implicit deny with 403 AccessDenied naming the action and the object (Amazon S3 User Guide,
    # "Troubleshoot access denied (403 Forbidden) errors in Amazon S3"); the handler serves 503 and retries later.
    assert status == 503, error
    assert "AccessDenied" in error
    assert "s3:GetObject" in error
    assert f"models/root/{old.environment['MODEL_SHA256']}.onnx" in error
    assert infer(new) == (200, "")


def test_the_deployed_role_reads_every_version_of_the_model(cloud: LocalCloud, tmp_path: Path) -> None:
    old, new = two_versions(cloud, tmp_path)
    assert infer(old) == (200, "")
    assert infer(new) == (200, "")


def test_the_role_allows_no_other_model(cloud: LocalCloud, tmp_path: Path) -> None:
    """A function's role reads its own model's prefix only: pointed at another model's (identical) artifact, it
    is refused, where the embedded S3 alone would have served it."""
    other = cloud.deploy(root_bundle(tmp_path / "other", name="other"))
    mine = cloud.deploy(root_bundle(tmp_path / "mine", name="root"))
    assert other.model.sha256 == mine.model.sha256
    worker = cloud.start_worker(LocalDeployment(mine.model, other.uri), "1")
    status, error = infer(worker)
    assert status == 503
    assert "AccessDenied" in error
