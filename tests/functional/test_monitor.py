"""The drift monitor end to end on moto: capture objects in S3 -> the handler -> metrics in CloudWatch."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest

from functions import catalog
from functions.catalog import Cadence, Function
from functions.monitor import handler as monitor
from functions.monitor.stats import Column, compute_baseline
from tests.functional import test_paired_canary as paired
from tests.functional.conftest import BUCKET

NAMESPACE = "modelrail-test"
END = datetime.now(UTC).replace(second=0, microsecond=0)
EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "time": END.strftime("%Y-%m-%dT%H:%M:%SZ")}


def reference(rng: np.random.Generator, rows: int, shift: float = 0.0) -> tuple[np.ndarray, list[str], list[int]]:
    """Two numeric features (the first shifted by ``shift`` standard deviations), a colour, and a label."""
    x = rng.normal(size=(rows, 2))
    x[:, 0] += shift
    colours = list(rng.choice(["red", "green", "blue"], size=rows, p=[0.5, 0.3, 0.2]))
    labels = [int(v > 0) for v in x[:, 0]]
    return x, colours, labels


def baseline_document() -> bytes:
    x, colours, labels = reference(np.random.default_rng(1), 4000)
    baseline = compute_baseline(
        {
            "x[0]": Column("numeric", x[:, 0].tolist()),
            "x[1]": Column("numeric", x[:, 1].tolist()),
            "colour": Column("categorical", colours),
        },
        {"label": Column("categorical", [str(v) for v in labels])},
    )
    return json.dumps(baseline).encode()


def put_capture(
    s3: Any,
    model: str,
    version: str,
    x: np.ndarray,
    colours: list[str],
    labels: list[int],
    at: datetime,
    partition: datetime | None = None,
) -> None:
    """Records of 5 rows each timed from ``at``, written as Firehose would: gzip JSON lines under
    model=/version=/hour= (of ``partition``, the arrival time, by default ``at``)."""
    hour = partition or at
    lines = []
    for i in range(0, len(labels), 5):
        n = len(labels[i : i + 5])
        lines.append(
            json.dumps(
                {
                    "model": model,
                    "version": version,
                    "time": (at + timedelta(seconds=i)).isoformat(timespec="milliseconds"),
                    "request_id": f"r{i}",
                    "inputs": [
                        {"name": "x", "shape": [n, 2], "datatype": "FP32", "data": x[i : i + n].ravel().tolist()},
                        {"name": "colour", "shape": [n], "datatype": "BYTES", "data": colours[i : i + n]},
                    ],
                    "outputs": [{"name": "label", "shape": [n], "datatype": "INT64", "data": labels[i : i + n]}],
                    "excluded": [],
                }
            )
        )
    key = f"capture/model={model}/version={version}/hour={hour:%Y-%m-%d-%H}/capture-{version}-{at:%H%M%S}.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress("\n".join(lines).encode() + b"\n"))


@pytest.fixture
def run(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """Deploy the baseline and the monitor's environment; run(models=None) invokes the handler."""
    body = baseline_document()
    s3.put_object(Bucket=BUCKET, Key="baselines/fraud/baseline.json", Body=body)
    model = {
        "name": "fraud",
        "baseline_uri": f"s3://{BUCKET}/baselines/fraud/baseline.json",
        "baseline_sha256": hashlib.sha256(body).hexdigest(),
    }
    for key, value in {
        "CAPTURE_BUCKET": BUCKET,
        "WINDOW_MINUTES": "60",
        "MIN_ROWS": "100",
        "METRICS_NAMESPACE": NAMESPACE,
    }.items():
        monkeypatch.setenv(key, value)

    def _run(models: list[dict[str, str]] | None = None) -> dict[str, Any]:
        monkeypatch.setenv("MODELS", json.dumps(models if models is not None else [model]))
        return monitor.handler(EVENT, None)

    return _run


def statistic(metric: str, **dims: str) -> float | None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    points = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=END - timedelta(hours=1),
        EndTime=END + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    return max(p["Maximum"] for p in points) if points else None


def test_shifted_inputs_raise_feature_drift_past_the_alarm_threshold(s3: Any, run: Callable[..., Any]) -> None:
    rng = np.random.default_rng(2)
    put_capture(s3, "fraud", "3", *reference(rng, 600), END - timedelta(minutes=30))  # same world
    put_capture(s3, "fraud", "4", *reference(rng, 600, shift=1.5), END - timedelta(minutes=20))  # x[0] moved

    result = run()

    assert statistic("CapturedRows", ModelName="fraud", ModelVersion="3") == 600
    assert statistic("CapturedRows", ModelName="fraud", ModelVersion="4") == 600
    assert statistic("CapturedRows", ModelName="fraud") == 1200
    steady = statistic("FeatureDriftMax", ModelName="fraud", ModelVersion="3")
    shifted = statistic("FeatureDriftMax", ModelName="fraud", ModelVersion="4")
    assert steady is not None
    assert steady < 0.1
    assert shifted is not None
    assert shifted > 0.25
    # the moved feature is the one named, the others are not
    assert statistic("FeatureDrift", ModelName="fraud", ModelVersion="4", Feature="x[0]") == shifted
    assert (statistic("FeatureDrift", ModelName="fraud", ModelVersion="4", Feature="colour") or 1) < 0.1
    # the label mix follows x[0]: about half ones before, about 93% after
    assert (statistic("PredictionDrift", ModelName="fraud", ModelVersion="3") or 1) < 0.1
    assert (statistic("PredictionDrift", ModelName="fraud", ModelVersion="4") or 0) > 0.25
    reports = {r["version"]: r for r in result["reports"]}
    assert reports["4"]["drift"]["feature_drift_max"] == pytest.approx(shifted)


def test_per_feature_metrics_carry_the_feature_dimension(s3: Any, run: Callable[..., Any]) -> None:
    put_capture(s3, "fraud", "7", *reference(np.random.default_rng(3), 200), END - timedelta(minutes=5))
    run()
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName="FeatureDrift")["Metrics"]
    features = sorted(next(d["Value"] for d in m["Dimensions"] if d["Name"] == "Feature") for m in listed)
    assert features == ["colour", "x[0]", "x[1]"]


def test_an_empty_window_publishes_zero_rows_and_no_drift(s3: Any, run: Callable[..., Any]) -> None:
    # captured, but three hours before the window
    put_capture(s3, "fraud", "3", *reference(np.random.default_rng(4), 300), END - timedelta(hours=3))
    result = run()
    assert result["reports"] == []
    assert statistic("CapturedRows", ModelName="fraud") == 0
    assert statistic("FeatureDriftMax", ModelName="fraud", ModelVersion="3") is None


def test_records_outside_the_window_are_not_counted(s3: Any, run: Callable[..., Any]) -> None:
    rng = np.random.default_rng(5)
    put_capture(s3, "fraud", "3", *reference(rng, 150), END - timedelta(minutes=10))
    # timed before the window but arrived (partitioned) with the ones inside it
    put_capture(s3, "fraud", "3", *reference(rng, 50), END - timedelta(minutes=75), END - timedelta(minutes=10))
    run()
    assert statistic("CapturedRows", ModelName="fraud", ModelVersion="3") == 150


def test_too_few_rows_publish_rows_but_no_drift(s3: Any, run: Callable[..., Any]) -> None:
    put_capture(s3, "fraud", "3", *reference(np.random.default_rng(6), 40, shift=3), END - timedelta(minutes=10))
    result = run()
    assert statistic("CapturedRows", ModelName="fraud", ModelVersion="3") == 40
    assert statistic("FeatureDriftMax", ModelName="fraud", ModelVersion="3") is None
    assert "fewer than MIN_ROWS" in result["reports"][0]["note"]


def test_a_tampered_baseline_fails_the_run_but_not_the_other_models(s3: Any, run: Callable[..., Any]) -> None:
    put_capture(s3, "fraud", "3", *reference(np.random.default_rng(7), 200), END - timedelta(minutes=10))
    good = {
        "name": "fraud",
        "baseline_uri": f"s3://{BUCKET}/baselines/fraud/baseline.json",
        "baseline_sha256": hashlib.sha256(baseline_document()).hexdigest(),
    }
    bad = {**good, "name": "other", "baseline_sha256": "0" * 64}
    with pytest.raises(RuntimeError, match=r"other: baseline .* has sha256 .*, expected 0000"):
        run([bad, good])
    assert statistic("CapturedRows", ModelName="fraud", ModelVersion="3") == 200


def test_a_bad_environment_names_the_variable(run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELS", "[]")
    monkeypatch.setenv("WINDOW_MINUTES", "soon")
    with pytest.raises(monitor.MonitorConfigError, match="WINDOW_MINUTES must be a positive integer"):
        monitor.handler(EVENT, None)


def test_canary_analysis_compares_the_new_version_with_the_old_on_the_same_window(
    s3: Any, run: Callable[..., Any]
) -> None:
    rng = np.random.default_rng(5)
    x, colours, labels = reference(rng, 400)
    put_capture(s3, "fraud", "7", x, colours, labels, END - timedelta(minutes=10))
    agreeing = reference(rng, 100)
    put_capture(s3, "fraud", "8", *agreeing, END - timedelta(minutes=9))
    run()
    assert (statistic("PredictionDivergence", ModelName="fraud", ModelVersion="8") or 1) < 0.1
    assert statistic("PredictionDivergence", ModelName="fraud", ModelVersion="7") is None  # the old one is not judged


def test_a_canary_that_predicts_otherwise_is_flagged(s3: Any, run: Callable[..., Any]) -> None:
    rng = np.random.default_rng(6)
    put_capture(s3, "fraud", "7", *reference(rng, 400), END - timedelta(minutes=10))
    x, colours, _ = reference(rng, 100)
    put_capture(s3, "fraud", "8", x, colours, [1] * 100, END - timedelta(minutes=9))  # same inputs, all ones
    run()
    assert (statistic("PredictionDivergence", ModelName="fraud", ModelVersion="8") or 0) > 0.25


class RecordingCloudWatch:
    """Keeps what the monitor hands to PutMetricData, units included (moto's list_metrics drops them)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:  # noqa: N803
        self.published += [(Namespace, datum) for datum in MetricData]


def test_every_metric_the_monitor_publishes_is_in_the_catalog_as_published(
    s3: Any, run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(8)
    put_capture(s3, "fraud", "7", *reference(rng, 400), END - timedelta(minutes=10))
    put_capture(s3, "fraud", "8", *reference(rng, 200, shift=1.5), END - timedelta(minutes=9))  # a drifting canary
    run()  # the monitor's environment, as the fixture sets it
    # The model's function, mid-deployment from 7 to 8, for the paired canary analysis (an old version that
    # answers label 0 to everything: this test is about what is published, not its value).
    models = json.loads(os.environ["MODELS"])
    monkeypatch.setenv("MODELS", json.dumps([{**models[0], "function_name": paired.FUNCTION}]))
    lambda_client = paired.lambda_with_alias({"8": 0.1}, live="7", versions=8)

    def old_version(version: str, event: dict[str, Any]) -> dict[str, Any]:
        n = json.loads(event["body"])["inputs"][0]["shape"][0]
        outputs = [{"name": "label", "shape": [n], "datatype": "INT64", "data": [0] * n}]
        return {"statusCode": 200, "body": json.dumps({"model_name": "fraud", "outputs": outputs})}

    cloudwatch = RecordingCloudWatch()

    clients = {"s3": s3, "cloudwatch": cloudwatch, "lambda": lambda_client, "invoke": old_version}
    monitor.handler(EVENT, None, clients=clients)

    names = {datum["MetricName"] for _, datum in cloudwatch.published}
    assert names == {m.name for m in catalog.METRICS if m.publisher is Function.MONITOR}
    for namespace, datum in cloudwatch.published:
        assert namespace == NAMESPACE  # the environment's METRICS_NAMESPACE
        metric = catalog.metric(catalog.NAMESPACE, datum["MetricName"])
        assert metric is not None
        assert (metric.publisher, metric.cadence) == (Function.MONITOR, Cadence.PER_MONITOR_RUN)
        assert datum["Unit"] == metric.unit, metric.name
        assert tuple(d["Name"] for d in datum["Dimensions"]) in metric.dimension_sets, metric.name
