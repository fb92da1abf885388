"""Data capture: sampled successful requests reach S3 through Firehose, never a client's bad input, never an
excluded input, and never at the expense of a request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from functions.inference.capture import DataCapture
from tests import builders
from tests.functional.conftest import BUCKET

STREAM = "modelrail-capture-test"


@pytest.fixture
def firehose(s3: Any) -> Any:
    client = boto3.client("firehose", region_name="us-east-1")
    client.create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "capture/",
        },
    )
    return client


def captured(s3: Any) -> list[dict[str, Any]]:
    records = []
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/").get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines() if line]
    return records


def multi_request(k: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [k, k, k]},
            {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
            {"name": "k", "shape": [1], "datatype": "INT64", "data": [k]},
        ]
    }


def test_successful_requests_are_captured_without_excluded_inputs(
    deploy: Any, firehose: Any, s3: Any, tmp_path: Path
) -> None:
    function = deploy(
        builders.two_inputs(tmp_path / "m.onnx"),
        "multi",
        version="4",
        CAPTURE_STREAM=STREAM,
        CAPTURE_SAMPLE_RATE="1.0",
        CAPTURE_EXCLUDE_INPUTS="b",
    )
    for k in range(3):
        assert function.infer(multi_request(k)).status == 200
    assert (
        function.infer({"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}).status == 400
    )
    function.module.service.capture.flush()

    records = captured(s3)

    assert [r["inputs"][1]["data"] for r in records] == [[0], [1], [2]]  # the 400 was not captured
    first = records[0]
    assert (first["model"], first["version"], first["excluded"]) == ("multi", "4", ["b"])
    assert [i["name"] for i in first["inputs"]] == ["a", "k"]
    assert {o["name"]: o["data"] for o in first["outputs"]} == {"sum": [1.0, 2.0, 3.0], "scaled": [0]}
    assert first["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_sampling_keeps_about_the_configured_share(firehose: Any, s3: Any) -> None:
    capture = DataCapture(STREAM, model="m", version="1", sample_rate=0.1, client_factory=lambda: firehose, seed=7)
    kept = sum(capture.offer(None, {"x": np.ones((1, 2), np.float32)}, {"y": np.ones(1)}) for _ in range(2000))
    capture.flush()
    assert 150 <= kept <= 250
    assert len(captured(s3)) == kept


def test_under_pressure_records_are_dropped_and_counted(firehose: Any, s3: Any) -> None:
    capture = DataCapture(
        STREAM,
        model="m",
        version="1",
        sample_rate=1.0,
        max_buffered=5,
        flush_records=10_000,
        client_factory=lambda: firehose,
    )
    for _ in range(8):
        capture.offer(None, {"x": np.zeros((1, 2), np.float32)}, {"y": np.zeros(1)})
    capture.flush()
    assert capture.take_counts() == (5, 3)


def test_a_failing_stream_never_reaches_the_request(deploy: Any, s3: Any, tmp_path: Path) -> None:
    function = deploy(
        builders.two_inputs(tmp_path / "m.onnx"), "multi", CAPTURE_STREAM="no-such-stream", CAPTURE_SAMPLE_RATE="1.0"
    )
    assert function.infer(multi_request(1)).status == 200
    function.module.service.capture.flush()
    assert function.module.service.capture.take_counts() == (0, 1)
    assert function.infer(multi_request(2)).status == 200
