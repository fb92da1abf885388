"""LatencyHistogram: latencies in log-spaced buckets (HDR-style), so memory stays fixed however long a run lasts.

Each bucket spans a fixed ratio (1 + ``precision``), so any percentile it reports is within ``precision`` of a
recorded value (relative error, as HdrHistogram's significant digits); count, min, max and sum are exact.
Histograms merge by adding counts, which is how per-interval histograms become the run's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class LatencyHistogram:
    """Values in milliseconds from ``lowest_ms`` (smaller ones fall in the first bucket) upwards, unbounded."""

    def __init__(self, *, precision: float = 0.01, lowest_ms: float = 0.001) -> None:
        if not 0 < precision < 1:
            raise ValueError(f"precision must be between 0 and 1, got {precision}")
        self.precision = precision
        self.lowest_ms = lowest_ms
        self._log_ratio = math.log1p(precision)
        self._counts: dict[int, int] = {}
        self.count = 0
        self.total_ms = 0.0
        self.min_ms = math.inf
        self.max_ms = 0.0

    def _bucket(self, value_ms: float) -> int:
        if value_ms <= self.lowest_ms:
            return 0
        return math.ceil(math.log(value_ms / self.lowest_ms) / self._log_ratio)

    def _upper(self, bucket: int) -> float:
        return self.lowest_ms * math.exp(bucket * self._log_ratio)

    def record(self, value_ms: float) -> None:
        if not math.isfinite(value_ms) or value_ms < 0:
            raise ValueError(f"a latency must be a finite, non-negative number of ms, got {value_ms}")
        bucket = self._bucket(value_ms)
        self._counts[bucket] = self._counts.get(bucket, 0) + 1
        self.count += 1
        self.total_ms += value_ms
        self.min_ms = min(self.min_ms, value_ms)
        self.max_ms = max(self.max_ms, value_ms)

    def merge(self, other: LatencyHistogram) -> None:
        if (other.precision, other.lowest_ms) != (self.precision, self.lowest_ms):
            raise ValueError("only histograms with the same precision and lowest value merge")
        for bucket, count in other._counts.items():
            self._counts[bucket] = self._counts.get(bucket, 0) + count
        self.count += other.count
        self.total_ms += other.total_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, percent: float) -> float | None:
        """The value at or below which ``percent`` % of recorded values lie (nearest rank); None when empty.

        Reported as its bucket's upper edge, clamped to the exact min and max: never below the true value by more
        than the bucket's width, and p100 is the exact max."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percentile must be between 0 and 100, got {percent}")
        if self.count == 0:
            return None
        rank = max(1, math.ceil(percent / 100 * self.count))
        seen = 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return min(max(self._upper(bucket), self.min_ms), self.max_ms)
        return self.max_ms

    def percentiles(self, percents: Iterable[float] = (50, 90, 99, 99.9)) -> dict[str, float | None]:
        return {f"p{p:g}": self.percentile(p) for p in percents}

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.count if self.count else None

    def summary(self) -> dict[str, float | int | None]:
        """count, p50, p90, p99, p99.9, max and mean: the report's latency block."""
        return {
            "count": self.count,
            **self.percentiles(),
            "max": self.max_ms if self.count else None,
            "mean": self.mean_ms,
        }
