"""Order statistics for timing samples: medians and tails, never means alone (a shared machine is noisy)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks, like numpy's default."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(nanoseconds: Sequence[int]) -> dict[str, float]:
    """p50/p99/min/mean in microseconds of per-call samples in nanoseconds."""
    us = [n / 1000 for n in nanoseconds]
    return {
        "n": len(us),
        "p50_us": round(percentile(us, 50), 1),
        "p99_us": round(percentile(us, 99), 1),
        "min_us": round(min(us), 1),
        "mean_us": round(statistics.fmean(us), 1),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
