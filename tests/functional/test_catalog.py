"""What the inference function really prints in its EMF records is what the catalog says: every metric listed,
with the catalog's unit, namespace and dimensions, published per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from functions import catalog
from functions.catalog import Cadence, Function
from tests.functional.conftest import BUCKET, IRIS
from tests.utils import emf_records

pytestmark = pytest.mark.functional

STREAM = "modelrail-catalog-test"
FLOWER = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
WRONG_SHAPE = {"inputs": [{"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [5.1, 3.5, 1.4]}]}


def published(printed: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Each metric in the EMF records: (namespace, unit, dimension names), checked the same in every record."""
    seen: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for record in emf_records(printed):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            (dimensions,) = directive["Dimensions"]
            for metric in directive["Metrics"]:
                entry = (directive["Namespace"], metric["Unit"], tuple(dimensions))
                assert seen.setdefault(metric["Name"], entry) == entry, metric["Name"]
    return seen


def test_every_metric_the_handler_prints_is_in_the_catalog_as_printed(
    deploy: Callable[..., Any], s3: Any, capsys: Any
) -> None:
    boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
        },
    )
    # Captured records: sent, then counted on the next request.
    captured = deploy(IRIS, "iris", version="3", CAPTURE_STREAM=STREAM, CAPTURE_SAMPLE_RATE="1.0")
    assert captured.infer(FLOWER).status == 200
    assert captured.infer(WRONG_SHAPE).status == 400
    captured.module.service.capture.flush()
    assert captured.infer(FLOWER).status == 200
    # Dropped records: the stream does not exist.
    dropping = deploy(IRIS, "iris", version="4", CAPTURE_STREAM="no-such-stream", CAPTURE_SAMPLE_RATE="1.0")
    assert dropping.infer(FLOWER).status == 200
    dropping.module.service.capture.flush()
    assert dropping.infer(FLOWER).status == 200

    seen = published(capsys.readouterr().out)

    per_request = {m.name for m in catalog.METRICS if m.publisher is Function.INFERENCE}
    # Everything but a retried model load, which needs a failing S3 (tests/functional/test_cold_start_faults.py).
    assert set(seen) == per_request - {catalog.ARTIFACT_FETCH_RETRIES.name}
    for name, (namespace, unit, dimensions) in seen.items():
        metric = catalog.metric(namespace, name)
        assert metric is not None, f"{namespace}/{name} is printed but not in the catalog"
        assert (metric.unit, metric.dimensions) == (unit, dimensions), name
        assert (metric.publisher, metric.cadence) == (Function.INFERENCE, Cadence.PER_REQUEST), name
