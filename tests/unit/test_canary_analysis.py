"""Canary analysis: the new version's predictions against the old one's, published as PredictionDivergence."""

from __future__ import annotations

import json
import random

from modelrail.rehearsal.canary import CanaryAnalysis
from modelrail.rehearsal.metrics import MetricStore

DIMENSIONS = {"ModelName": "iris", "ModelVersion": "2"}


def answer(label: int) -> dict[str, object]:
    outputs = [{"name": "output_label", "datatype": "INT64", "shape": [1], "data": [label]}]
    return {"statusCode": 200, "body": json.dumps({"model_name": "iris", "outputs": outputs})}


def feed(canary: CanaryAnalysis, version: str, labels: list[int], start: float) -> None:
    for i, label in enumerate(labels):
        canary.observe(version, start + i * 0.1, {}, answer(label))


def test_same_predictions_stay_low_and_skewed_ones_cross_the_threshold() -> None:
    rnd = random.Random(0)
    store = MetricStore()
    canary = CanaryAnalysis(store, "iris", "1", "2", period_s=60, min_rows=50)
    feed(canary, "1", [rnd.randrange(3) for _ in range(400)], start=1)
    feed(canary, "2", [rnd.randrange(3) for _ in range(60)], start=1)
    canary.publish(60)
    [same] = store.values("modelrail", "PredictionDivergence", DIMENSIONS, 0, 60)
    assert same < 0.1

    feed(canary, "1", [rnd.randrange(3) for _ in range(400)], start=61)
    feed(canary, "2", [1] * 60, start=61)  # the new version now calls everything versicolor
    canary.publish(120)
    [skewed] = store.values("modelrail", "PredictionDivergence", DIMENSIONS, 60, 120)
    assert skewed > 0.25


def test_no_datapoint_until_the_new_version_has_enough_rows_or_for_errors() -> None:
    store = MetricStore()
    canary = CanaryAnalysis(store, "iris", "1", "2", period_s=60, min_rows=50)
    feed(canary, "1", [0, 1, 2] * 100, start=1)
    feed(canary, "2", [0, 1, 2] * 10, start=1)
    canary.observe("2", 5, {}, {"statusCode": 500, "body": '{"error": "non-finite"}'})
    canary.publish(60)
    assert store.values("modelrail", "PredictionDivergence", DIMENSIONS, 0, 60) == []
    assert canary.latest is None
