"""DriftWatch: the rehearsal's traffic against the baseline bundle's baseline.json, as the drift monitor
computes it from captured data in AWS (same columns, same PSI)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from typing import Any

from functions.monitor.capture import Columns
from functions.monitor.stats import DriftReport, drift_report


class DriftWatch:
    def __init__(self, baseline: Mapping[str, Any] | None, min_rows: int = 100) -> None:
        self.baseline = baseline
        self.min_rows = min_rows
        self._columns = Columns()
        self._lock = threading.Lock()

    def observe(self, version: str, time: float, event: dict[str, Any], response: dict[str, Any]) -> None:
        if self.baseline is None or response.get("statusCode") != 200:
            return
        body = response.get("body") or ""
        if response.get("isBase64Encoded") or '"outputs"' not in body:
            return
        raw = event.get("body") or ""
        request = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
        with self._lock:
            self._columns.add(request.get("inputs") or [], json.loads(body)["outputs"])

    def report(self) -> DriftReport | None:
        """Drift of all traffic answered so far, once there are ``min_rows`` rows."""
        if self.baseline is None:
            return None
        with self._lock:
            if self._columns.rows < self.min_rows:
                return None
            return drift_report(self.baseline, self._columns.features, self._columns.predictions, self._columns.rows)
