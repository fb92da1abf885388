"""CanaryAnalysis: the new version's predictions against the old version's on the same traffic.

At the end of each alarm period it publishes PredictionDivergence for the new version: the population
stability index of its predictions against the old version's, over every answer both gave since the new
version's first request (at least ``min_rows`` rows on the new side, else no datapoint: an idle canary is
not judged). The prediction-divergence alarm of the spec reads it like any other metric, and the monitor
function publishes the same figure from captured data in AWS.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from functions.monitor.capture import Columns
from functions.monitor.stats import prediction_divergence
from spec import catalog

from .metrics import MetricStore, datapoint


class CanaryAnalysis:
    def __init__(
        self, store: MetricStore, model: str, baseline: str, candidate: str, period_s: float, min_rows: int = 50
    ) -> None:
        self.store = store
        self.model = model
        self.baseline = baseline
        self.candidate = candidate
        self.period_s = period_s
        self.min_rows = min_rows
        self.latest: float | None = None
        self._answers: dict[str, list[tuple[float, list[dict[str, Any]]]]] = {baseline: [], candidate: []}
        self._lock = threading.Lock()
        self._published_until = 0.0

    def observe(self, version: str, time: float, event: dict[str, Any], response: dict[str, Any]) -> None:
        """Keep the predictions of one successful inference answer."""
        if version not in self._answers or response.get("statusCode") != 200:
            return
        body = response.get("body") or ""
        if response.get("isBase64Encoded") or '"outputs"' not in body:
            return
        outputs = json.loads(body)["outputs"]
        with self._lock:
            self._answers[version].append((time, outputs))

    def divergence(self, since: float, until: float) -> float | None:
        """Canary analysis over the answers both versions gave in [since, until)."""
        old, new = Columns(), Columns()
        with self._lock:
            for columns, version in ((old, self.baseline), (new, self.candidate)):
                for t, outputs in self._answers[version]:
                    if since <= t < until:
                        columns.add([], outputs)
        return prediction_divergence(old.predictions, new.predictions, self.min_rows)

    def publish(self, now: float) -> None:
        """PredictionDivergence for each alarm period that ended since the last call."""
        while self._published_until + self.period_s <= now:
            self._published_until += self.period_s
            with self._lock:
                first = min((t for t, _ in self._answers[self.candidate]), default=None)
            if first is None:
                continue
            value = self.divergence(first, self._published_until)
            if value is None:
                continue
            self.latest = value
            stamp = self._published_until - 1e-6  # inside the period that just ended
            metric = catalog.PREDICTION_DIVERGENCE
            self.store.add([datapoint(stamp, metric, value, model_name=self.model, version=self.candidate)])
