"""The drift monitor: a scheduled Lambda that compares each live version's captured traffic with its baseline.

Every run reads the latest window (``WINDOW_MINUTES``, ending at the schedule event's ``time``) of capture
records per model and version, computes the PSI of every baseline feature and prediction against it, and
publishes CloudWatch metrics (names, units and dimensions from catalog.py; ``ModelName`` and ``ModelVersion``):

- ``CapturedRows``: rows captured in the window (also with ``ModelName`` alone, summed over versions, and 0
  when nothing was captured: an alarm on it can tell capture stopping from traffic being quiet);
- ``FeatureDriftMax``: the largest feature PSI; ``PredictionDrift``: the largest prediction PSI;
- ``FeatureDrift`` with an extra ``Feature`` dimension, for the ``MAX_FEATURE_METRICS`` worst features.

Drift is published only for a version with at least ``MIN_ROWS`` rows in the window (PSI on a handful of rows
is noise). "Live" versions are those with capture records in the window: a version that served no captured
request has nothing to compare. Each run logs one JSON report per model version. A model whose baseline
cannot be read does not stop the others; the run then fails at its end so that the function's errors show it.

Environment (catalog.py): ``MODELS``, a JSON list of ``{"name", "baseline_uri": "s3://bucket/key",
"baseline_sha256", "function_name"?}``; ``CAPTURE_BUCKET`` and ``CAPTURE_PREFIX``; ``WINDOW_MINUTES``, ``MIN_ROWS``,
``METRICS_NAMESPACE``, ``MAX_FEATURE_METRICS``, ``MIN_CANARY_ROWS``, ``PAIRED_MAX_REQUESTS``,
``PAIRED_MIN_REQUESTS``, ``PAIRED_TOLERANCE`` (defaults below).

Canary analysis: when two versions are live in the window (a rollout), ``PredictionDivergence`` for the newest
is the PSI of its predictions against the other's on the same window (a drift signal: its alarm notifies), once the
newest has ``MIN_CANARY_ROWS`` rows.

Paired canary analysis (paired.py), for a model with a ``function_name``: while its alias ``live`` routes part of
the traffic to a new version, the version being replaced answers the new version's captured requests again, and
``CanaryDisagreement`` (the percentage answered otherwise) is published for the new version once
``PAIRED_MIN_REQUESTS`` were compared; the deployment group's canary-disagreement alarm watches it. Each run
invokes at most ``PAIRED_MAX_REQUESTS`` per model, and none in the last ``PAIRED_MARGIN_S`` of its time (the
function's timeout is the monitor's schedule, so a run ends before the next one starts).

Needs numpy and boto3 only (plus the stdlib).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from .capture import CAPTURE_PREFIX, CaptureReader
from .catalog import (
    CANARY_DISAGREEMENT,
    CAPTURED_ROWS,
    FEATURE_DRIFT,
    FEATURE_DRIFT_MAX,
    NAMESPACE,
    PREDICTION_DIVERGENCE,
    PREDICTION_DRIFT,
    Dimension,
    Env,
    Metric,
)
from .paired import Invoker, PairedResult, lambda_invoker, paired_analysis, rollout_versions
from .stats import DriftReport, drift_report, prediction_divergence

logger = logging.getLogger("modelrail.monitor")
logger.setLevel(logging.INFO)

PAIRED_MARGIN_S = 30
"""No paired invoke starts in a run's last 30 s (or last quarter, if shorter): what is left publishes its metrics."""
INVOKE_TIMEOUT_S = 10
"""The read timeout of one paired invoke: a hung old version costs the run that, not its whole time."""

_baselines: dict[str, dict[str, Any]] = {}  # by sha256: baselines are immutable, keep them across invocations


class MonitorConfigError(ValueError):
    """The function's environment is wrong; the message names the variable."""


@dataclass(frozen=True)
class MonitoredModel:
    name: str
    baseline_uri: str
    baseline_sha256: str
    function_name: str | None = None
    """The model's inference function: its alias says when a deployment is in flight (paired analysis)."""


@dataclass(frozen=True)
class MonitorSettings:
    models: tuple[MonitoredModel, ...]
    capture_bucket: str
    capture_prefix: str = CAPTURE_PREFIX
    window_minutes: int = 60
    min_rows: int = 100
    namespace: str = NAMESPACE
    max_feature_metrics: int = 50
    min_canary_rows: int = 50
    paired_max_requests: int = 100
    paired_min_requests: int = 20
    paired_tolerance: float = 0.01

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> MonitorSettings:
        try:
            raw = json.loads(environ.get(Env.MODELS.name) or "")
        except ValueError as exc:
            raise MonitorConfigError(f"{Env.MODELS.name} must be a JSON list of models: {exc}") from exc
        if not isinstance(raw, list):
            raise MonitorConfigError(
                f"{Env.MODELS.name} must be a JSON list of {{name, baseline_uri, baseline_sha256}}"
            )
        models = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), str) for k in ("name", "baseline_uri", "baseline_sha256")
            ):
                raise MonitorConfigError(
                    f"{Env.MODELS.name}[{i}] must be an object with strings: name, baseline_uri, baseline_sha256"
                )
            if not entry["baseline_uri"].startswith("s3://"):
                uri = entry["baseline_uri"]
                raise MonitorConfigError(f"{Env.MODELS.name}[{i}].baseline_uri must be s3://bucket/key, got {uri!r}")
            function_name = entry.get("function_name")
            if function_name is not None and not isinstance(function_name, str):
                raise MonitorConfigError(f"{Env.MODELS.name}[{i}].function_name must be a string")
            models.append(
                MonitoredModel(entry["name"], entry["baseline_uri"], entry["baseline_sha256"], function_name or None)
            )
        bucket = environ.get(Env.CAPTURE_BUCKET.name)
        if not bucket:
            raise MonitorConfigError(
                f"{Env.CAPTURE_BUCKET.name} is required: the bucket Firehose writes capture records to"
            )
        return cls(
            tuple(models),
            bucket,
            environ.get(Env.CAPTURE_PREFIX.name, CAPTURE_PREFIX),
            _positive(environ, Env.WINDOW_MINUTES.name, 60),
            _positive(environ, Env.MIN_ROWS.name, 100),
            environ.get(Env.METRICS_NAMESPACE.name) or NAMESPACE,
            _positive(environ, Env.MAX_FEATURE_METRICS.name, 50),
            _positive(environ, Env.MIN_CANARY_ROWS.name, 50),
            _positive(environ, Env.PAIRED_MAX_REQUESTS.name, 100),
            _positive(environ, Env.PAIRED_MIN_REQUESTS.name, 20),
            _tolerance(environ, Env.PAIRED_TOLERANCE.name, 0.01),
        )


def _positive(environ: Mapping[str, str], key: str, default: int) -> int:
    value = environ.get(key)
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise MonitorConfigError(f"{key} must be a positive integer, got {value!r}")
    return int(value)


def _tolerance(environ: Mapping[str, str], key: str, default: float) -> float:
    value = environ.get(key)
    if not value:
        return default
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not 0 <= parsed < 1:
        raise MonitorConfigError(f"{key} must be a number in [0, 1), got {value!r}")
    return parsed


def handler(
    event: Mapping[str, Any] | None, context: Any, *, clients: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    settings = MonitorSettings.from_environ(os.environ)
    clients = clients or {}
    s3 = clients.get("s3") or boto3.client("s3")
    cloudwatch = clients.get("cloudwatch") or boto3.client("cloudwatch")
    lambda_client = clients.get("lambda")
    if lambda_client is None and any(m.function_name for m in settings.models):
        from botocore.config import Config

        # No retries: a retried timeout would run the old version twice; a lost request is one fewer compared.
        config = Config(read_timeout=INVOKE_TIMEOUT_S, retries={"total_max_attempts": 1})
        lambda_client = boto3.client("lambda", config=config)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    stop_at = None
    if callable(remaining):
        left_s = remaining() / 1000
        stop_at = time.monotonic() + left_s - min(PAIRED_MARGIN_S, left_s / 4)
    end = window_end(event)
    start = end - timedelta(minutes=settings.window_minutes)
    reader = CaptureReader(s3, settings.capture_bucket, settings.capture_prefix)
    reports: list[dict[str, Any]] = []
    failures: list[str] = []
    for model in settings.models:
        try:
            baseline = load_baseline(s3, model)
            model_reports = monitor_model(reader, cloudwatch, settings, model.name, baseline, start, end)
            if model.function_name:
                invoke = clients.get("invoke") or lambda_invoker(lambda_client, model.function_name)
                paired = paired_canary(
                    reader, cloudwatch, settings, model, lambda_client, invoke, start, end, stop_at=stop_at
                )
                if paired is not None:
                    model_reports.append({"model": model.name, "version": paired.new, "paired": paired.to_dict()})
        except Exception as exc:
            logger.exception("drift monitor failed for model %s", model.name)
            failures.append(f"{model.name}: {exc}")
            continue
        reports.extend(model_reports)
    summary = {"window_start": start.isoformat(), "window_end": end.isoformat(), "reports": reports}
    if failures:
        raise RuntimeError(f"drift monitor failed for {len(failures)} model(s): {'; '.join(failures)}")
    return summary


def window_end(event: Mapping[str, Any] | None) -> datetime:
    """The scheduled event's ``time`` (so a retried run reads the same window), else now."""
    raw = (event or {}).get("time")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def load_baseline(s3: Any, model: MonitoredModel) -> dict[str, Any]:
    cached = _baselines.get(model.baseline_sha256)
    if cached is not None:
        return cached
    bucket, _, key = model.baseline_uri.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = hashlib.sha256(body).hexdigest()
    if digest != model.baseline_sha256:
        raise ValueError(f"baseline {model.baseline_uri} has sha256 {digest}, expected {model.baseline_sha256}")
    baseline = json.loads(body)
    if not isinstance(baseline, dict) or "features" not in baseline:
        raise ValueError(f"baseline {model.baseline_uri} is not a baseline.json document (no 'features')")
    _baselines[model.baseline_sha256] = baseline
    return baseline


def monitor_model(
    reader: CaptureReader,
    cloudwatch: Any,
    settings: MonitorSettings,
    model: str,
    baseline: Mapping[str, Any],
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    total_rows = 0
    live: dict[str, Any] = {}
    for version in reader.versions(model):
        columns = reader.columns(model, version, start, end)
        if columns.records == 0:
            continue  # not live in this window
        live[version] = columns
        total_rows += columns.rows
        dims = _version_dimensions(model, version)
        metrics.append(_metric(CAPTURED_ROWS, dims, columns.rows, end))
        report: dict[str, Any] = {"model": model, "version": version, "rows": columns.rows}
        if columns.rows < settings.min_rows:
            report["drift"] = None
            report["note"] = (
                f"{columns.rows} rows in the window, fewer than {Env.MIN_ROWS.name} {settings.min_rows}: no drift"
            )
        else:
            drift = drift_report(baseline, columns.features, columns.predictions, columns.rows)
            metrics.extend(drift_metrics(drift, dims, end, settings.max_feature_metrics))
            report["drift"] = drift.to_dict()
        reports.append(report)
        logger.info(json.dumps({"message": "drift report", **report}))
    metrics.extend(canary_metrics(model, live, end, settings.min_canary_rows))
    metrics.append(_metric(CAPTURED_ROWS, [{"Name": Dimension.MODEL_NAME, "Value": model}], total_rows, end))
    if not reports:
        logger.info(json.dumps({"message": "no captured traffic in the window", "model": model, "rows": 0}))
    put_metrics(cloudwatch, settings.namespace, metrics)
    return reports


def paired_canary(
    reader: CaptureReader,
    cloudwatch: Any,
    settings: MonitorSettings,
    model: MonitoredModel,
    lambda_client: Any,
    invoke: Invoker,
    start: datetime,
    end: datetime,
    *,
    stop_at: float | None = None,
) -> PairedResult | None:
    """While a deployment is in flight: the paired comparison, and CanaryDisagreement for the new version once
    enough requests were compared. None when the alias routes to one version only."""
    assert model.function_name is not None
    versions = rollout_versions(lambda_client, model.function_name)
    if versions is None:
        return None
    old, new = versions
    result = paired_analysis(
        reader,
        invoke,
        model=model.name,
        old=old,
        new=new,
        start=start,
        end=end,
        max_requests=settings.paired_max_requests,
        tolerance=settings.paired_tolerance,
        stop_at=stop_at,
    )
    rate = result.disagreement_percent
    logger.info(json.dumps({"message": "paired canary analysis", "model": model.name, **result.to_dict()}))
    if rate is not None and result.compared >= settings.paired_min_requests:
        put_metrics(
            cloudwatch,
            settings.namespace,
            [_metric(CANARY_DISAGREEMENT, _version_dimensions(model.name, new), rate, end)],
        )
    return result


def canary_metrics(model: str, live: Mapping[str, Any], at: datetime, min_rows: int) -> list[dict[str, Any]]:
    """During a rollout (two versions live in the window): PredictionDivergence of the newest version's
    predictions against the other one's, the metric of the deployment group's prediction-divergence alarm."""
    numbered = sorted((v for v in live if v.isdigit()), key=int)
    if len(numbered) < 2:
        return []
    new = numbered[-1]
    old = max(numbered[:-1], key=lambda v: live[v].rows)
    value = prediction_divergence(live[old].predictions, live[new].predictions, min_rows)
    if value is None:
        return []
    logger.info(json.dumps({"message": "canary analysis", "model": model, "old": old, "new": new, "psi": value}))
    return [_metric(PREDICTION_DIVERGENCE, _version_dimensions(model, new), value, at)]


def drift_metrics(
    drift: DriftReport, dims: list[dict[str, str]], at: datetime, max_features: int
) -> list[dict[str, Any]]:
    metrics = []
    if drift.feature_drift_max is not None:
        metrics.append(_metric(FEATURE_DRIFT_MAX, dims, drift.feature_drift_max, at))
    if drift.prediction_drift is not None:
        metrics.append(_metric(PREDICTION_DRIFT, dims, drift.prediction_drift, at))
    for entry in drift.worst("feature", max_features):
        feature_dims = [*dims, {"Name": Dimension.FEATURE, "Value": entry.name}]
        metrics.append(_metric(FEATURE_DRIFT, feature_dims, entry.psi or 0.0, at))
    return metrics


def _version_dimensions(model: str, version: str) -> list[dict[str, str]]:
    return [{"Name": Dimension.MODEL_NAME, "Value": model}, {"Name": Dimension.MODEL_VERSION, "Value": version}]


def _metric(metric: Metric, dims: list[dict[str, str]], value: float, at: datetime) -> dict[str, Any]:
    return {"MetricName": metric.name, "Dimensions": dims, "Value": float(value), "Timestamp": at, "Unit": metric.unit}


def put_metrics(cloudwatch: Any, namespace: str, metrics: list[dict[str, Any]]) -> None:
    for i in range(0, len(metrics), 20):  # stay within any PutMetricData limit, old or new
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=metrics[i : i + 20])
