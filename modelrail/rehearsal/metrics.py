"""MetricStore: the CloudWatch metrics of a rehearsal, from what the handlers actually emitted.

The model's metrics come from the EMF records each worker printed; Lambda's own per-version metrics
(Invocations, Errors, Duration under FunctionName/Resource/ExecutedVersion) are recorded per invocation, as
the Lambda service would publish them, and Throttles for each request it throttled. Each datapoint is stamped
with rehearsed time.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from spec import catalog


@dataclass(frozen=True)
class Datapoint:
    time: float
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    value: float


def emf_datapoints(lines: Iterable[str], time: float) -> list[Datapoint]:
    """The datapoints in a batch of log lines written in CloudWatch's Embedded Metric Format."""
    points = []
    for line in lines:
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        for directive in record["_aws"].get("CloudWatchMetrics", []):
            for dimension_set in directive.get("Dimensions", []):
                dimensions = frozenset((d, str(record[d])) for d in dimension_set)
                for metric in directive.get("Metrics", []):
                    values = record.get(metric["Name"], [])
                    for value in values if isinstance(values, list) else [values]:
                        points.append(Datapoint(time, directive["Namespace"], metric["Name"], dimensions, float(value)))
    return points


def datapoint(
    time: float, metric: catalog.Metric, value: float, *, model_name: str = "", function_name: str = "", version: str
) -> Datapoint:
    """One datapoint of a catalog metric, with the dimensions that scope it to ``version``."""
    dimensions = catalog.version_dimensions(metric, model_name=model_name, function_name=function_name, version=version)
    return Datapoint(time, metric.namespace, metric.name, frozenset(dimensions.items()), value)


def lambda_datapoints(
    function_name: str, version: str, time: float, *, error: bool, duration_ms: float
) -> list[Datapoint]:
    """What Lambda publishes for one invocation through the alias that ran on ``version``."""
    return [
        datapoint(time, metric, value, function_name=function_name, version=version)
        for metric, value in (
            (catalog.INVOCATIONS, 1.0),
            (catalog.ERRORS, 1.0 if error else 0.0),
            (catalog.DURATION, duration_ms),
        )
    ]


def throttle_datapoints(function_name: str, version: str, time: float) -> list[Datapoint]:
    """What Lambda publishes for one invocation request through the alias that it throttled on ``version``: the
    function never ran, so Throttles 1 and no Invocations, Errors or Duration ("Invocations aren't recorded if the
    invocation request is throttled", AWS Lambda Developer Guide, "Types of metrics for Lambda functions",
    monitoring-metrics-types.html)."""
    return [datapoint(time, catalog.THROTTLES, 1.0, function_name=function_name, version=version)]


def statistic(values: list[float], name: str) -> float | None:
    """CloudWatch's statistics over one period's values (None when there are none)."""
    if not values:
        return None
    if name == "Sum":
        return sum(values)
    if name == "Average":
        return sum(values) / len(values)
    if name == "Minimum":
        return min(values)
    if name == "Maximum":
        return max(values)
    if name == "SampleCount":
        return float(len(values))
    if name.startswith("p"):
        ordered = sorted(values)
        rank = max(1, math.ceil(float(name[1:]) / 100 * len(ordered)))  # nearest rank
        return ordered[rank - 1]
    raise ValueError(f"unknown statistic {name!r}")


class MetricStore:
    def __init__(self) -> None:
        self._points: list[Datapoint] = []
        self._lock = threading.Lock()

    def add(self, points: Iterable[Datapoint]) -> None:
        with self._lock:
            self._points.extend(points)

    def values(self, namespace: str, name: str, dimensions: Mapping[str, str], start: float, end: float) -> list[float]:
        """Values of the metric with exactly these dimensions, stamped in [start, end)."""
        wanted = frozenset(dimensions.items())
        with self._lock:
            return [
                p.value
                for p in self._points
                if p.name == name and p.namespace == namespace and p.dimensions == wanted and start <= p.time < end
            ]
