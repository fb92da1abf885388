"""The pre-traffic hook's replay, judged on the synthesized templates as IAM would: it may list and read its own
model's captured requests, and nothing else of the capture bucket; its environment names that bucket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.aws_semantics import allows
from tests.infra.template_queries import policy_statements, pre_traffic_hook, resources, role_of

pytestmark = pytest.mark.infra


def _capture_bucket(template: dict[str, Any]) -> str:
    """The logical id of the bucket the capture stream delivers to (read from the stream, not assumed)."""
    (stream,) = resources(template, "AWS::KinesisFirehose::DeliveryStream").values()
    arn = stream["Properties"]["ExtendedS3DestinationConfiguration"]["BucketARN"]
    return str(arn["Fn::GetAtt"][0])


def test_the_gate_reads_its_own_models_capture_and_nothing_else(environment: tuple[str, dict[str, Any]]) -> None:
    name, template = environment
    bucket_id = _capture_bucket(template)
    hook_id, hook = pre_traffic_hook(template)
    variables = hook["Properties"]["Environment"]["Variables"]
    assert variables["CAPTURE_BUCKET"] == {"Ref": bucket_id}, f"{name}: the hook does not know the capture bucket"
    statements = policy_statements(template, role_of(hook))
    # IAM evaluates "arn:aws:s3:::<bucket>" with the bucket's Ref resolved (aws_semantics.resolve spells it <Id>).
    bucket = f"arn:aws:s3:::<{bucket_id}>"
    own = "capture/model=iris/version=3/hour=2026-12-06-22/"

    # ListObjectsV2 authorizes s3:ListBucket on the bucket, with the request's Prefix as s3:prefix (Amazon S3 User
    # Guide, "Actions, resources, and condition keys for Amazon S3": s3:prefix on ListBucket).
    assert allows(statements, "s3:ListBucket", bucket, context={"s3:prefix": "capture/model=iris/version=3/"})
    assert allows(statements, "s3:ListBucket", bucket, context={"s3:prefix": own})
    assert allows(statements, "s3:GetObject", f"{bucket}/{own}modelrail-capture-3-2026-12-06-22-01-00-abc.gz")
    for prefix in ("capture/", "capture/model=iris-shadow/", "capture/model=other/version=1/", "capture-errors/", ""):
        assert not allows(statements, "s3:ListBucket", bucket, context={"s3:prefix": prefix}), prefix
    assert not allows(statements, "s3:ListBucket", bucket), "a listing of the whole bucket (no prefix)"
    for key in (
        "capture/model=iris-shadow/version=1/hour=2026-12-06-22/x.gz",
        "capture/model=other/version=1/hour=2026-12-06-22/x.gz",
        "capture-errors/processing-failed/2026-12-06-22/x.gz",
    ):
        assert not allows(statements, "s3:GetObject", f"{bucket}/{key}"), key
    assert not allows(statements, "s3:PutObject", f"{bucket}/{own}x.gz")
    assert not allows(statements, "s3:DeleteObject", f"{bucket}/{own}x.gz")
    assert hook_id
