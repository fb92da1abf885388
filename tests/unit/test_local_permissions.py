"""The role a local worker runs with: the statement the construct grants, IAM's matching, S3's refusal."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from modelrail.local.permissions import LocalRoles, check_call, read_role, s3_request
from spec.models import DeployedModel
from spec.permissions import Statement, inference_role, read_artifact_versions

BUCKET = "modelrail-artifacts"
SHA = "ab" * 32


def model(name: str = "iris", sha256: str = SHA) -> DeployedModel:
    return DeployedModel(name=name, sha256=sha256, max_batch_rows=1024)


def test_the_inference_role_reads_every_version_of_its_model_and_nothing_else() -> None:
    (statement,) = inference_role(BUCKET, "iris", f"models/iris/{SHA}.onnx")
    assert statement == Statement(("s3:GetObject",), (f"arn:aws:s3:::{BUCKET}/models/iris/*",))
    assert statement.allows("s3:GetObject", f"arn:aws:s3:::{BUCKET}/models/iris/{'0' * 64}.onnx")
    assert statement.allows("S3:getobject", f"arn:aws:s3:::{BUCKET}/models/iris/{SHA}.onnx")  # actions ignore case
    for elsewhere in (
        f"arn:aws:s3:::{BUCKET}/models/iris-shadow/{SHA}.onnx",
        f"arn:aws:s3:::{BUCKET}/models/IRIS/{SHA}.onnx",  # resources do not
        f"arn:aws:s3:::{BUCKET}/acceptance/iris/{SHA}.jsonl",
        f"arn:aws:s3:::other-bucket/models/iris/{SHA}.onnx",
    ):
        assert not statement.allows("s3:GetObject", elsewhere), elsewhere
    assert not statement.allows("s3:PutObject", f"arn:aws:s3:::{BUCKET}/models/iris/{SHA}.onnx")


def test_a_grant_without_a_prefix_is_the_one_object() -> None:
    statement = read_artifact_versions(BUCKET, f"models/iris/{SHA}.onnx", prefix=None, partition="aws-cn")
    assert statement.resources == (f"arn:aws-cn:s3:::{BUCKET}/models/iris/{SHA}.onnx",)


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("GetObject", {"Bucket": "b", "Key": "k/x"}, ("s3:GetObject", "arn:aws:s3:::b/k/x")),
        ("HeadObject", {"Bucket": "b", "Key": "k"}, ("s3:GetObject", "arn:aws:s3:::b/k")),
        ("ListObjectsV2", {"Bucket": "b", "Prefix": "k/"}, ("s3:ListBucket", "arn:aws:s3:::b")),
        ("PutObject", {"Bucket": "b", "Key": "k"}, ("s3:PutObject", "arn:aws:s3:::b/k")),
    ],
)
def test_each_s3_call_is_authorized_as_s3_does(
    operation: str, params: dict[str, str], expected: tuple[str, str]
) -> None:
    assert s3_request(operation, params) == expected


def test_a_call_the_role_does_not_allow_is_s3s_access_denied(tmp_path: Path) -> None:
    roles = LocalRoles(tmp_path, bucket=BUCKET)
    role = roles.deploy(model())
    operation = SimpleNamespace(name="GetObject")
    check_call(role, "modelrail-iris", {"Bucket": BUCKET, "Key": f"models/iris/{SHA}.onnx"}, operation)
    with pytest.raises(ClientError) as refused:
        check_call(role, "modelrail-iris", {"Bucket": BUCKET, "Key": f"models/other/{SHA}.onnx"}, operation)
    error = refused.value.response
    assert error["Error"]["Code"] == "AccessDenied"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert f'"arn:aws:s3:::{BUCKET}/models/other/{SHA}.onnx"' in error["Error"]["Message"]
    assert refused.value.operation_name == "GetObject"


def test_a_deploy_changes_the_role_for_every_version_at_once(tmp_path: Path) -> None:
    """IAM roles are shared and updated in place: the version already running sees the new role on its next call."""
    roles = LocalRoles(tmp_path, bucket=BUCKET)
    roles.grants = lambda m: (read_artifact_versions(BUCKET, m.artifact_key, prefix=None),)
    role = roles.deploy(model(sha256="01" * 32))
    old_key = {"Bucket": BUCKET, "Key": f"models/iris/{'01' * 32}.onnx"}
    operation = SimpleNamespace(name="GetObject")
    check_call(role, "modelrail-iris", old_key, operation)
    roles.deploy(model(sha256="02" * 32))
    with pytest.raises(ClientError):
        check_call(role, "modelrail-iris", old_key, operation)


def test_a_function_without_a_role_may_do_nothing(tmp_path: Path) -> None:
    assert read_role(tmp_path / "absent.json") == ()
