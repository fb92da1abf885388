"""Drift statistics: the baseline profile of reference data, and the population stability index against it.

One statistic for everything: the population stability index (PSI),
``sum((actual - expected) * ln(actual / expected))`` over the bins (numeric) or categories of a column, each
share floored at ``EPSILON`` so that an empty bin on either side stays finite. It serves the input features and
the prediction distribution alike (a prediction is one more column: labels and ZipMap argmax keys are
categories, float outputs are binned), so one set of thresholds reads every figure: below 0.1 stable, 0.1 to
0.25 moderate, above 0.25 significant. Missing values (NaN, null) are a bin of their own: a pipeline that
starts sending nulls drifts.

PSI of two samples of the same distribution is not zero: it is about ``(bins - 1) * (1/n_baseline + 1/n_window)``
(its chi-square approximation), e.g. 0.05 for 10 bins and 300 rows on each side. Compare windows of a few
hundred rows or more. Pure numpy and stdlib: this module ships to Lambda.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

NUMERIC_BINS = 10
TOP_CATEGORIES = 20
# The share given to an empty bin (0.01%). It bounds one empty bin's term: a bin holding 10% of the window
# but none of the baseline adds (0.1 - 0.0001) * ln(0.1 / 0.0001) = 0.69, which is significant drift, as it should be.
EPSILON = 1e-4
STABLE_BELOW = 0.1
SIGNIFICANT_ABOVE = 0.25

Kind = Literal["numeric", "categorical"]
Verdict = Literal["stable", "moderate", "significant"]
OTHER = "(other)"
MISSING = "(missing)"


@dataclass
class Column:
    """One feature or prediction: its kind and one value per row (numeric: float, NaN when missing;
    categorical: a string, None when missing)."""

    kind: Kind
    values: list[Any]


def verdict(psi: float) -> Verdict:
    """PSI < 0.1 stable, 0.1 to 0.25 moderate, > 0.25 significant."""
    if psi < STABLE_BELOW:
        return "stable"
    return "moderate" if psi <= SIGNIFICANT_ABOVE else "significant"


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of ``actual`` shares against ``expected`` shares over the same bins.

    Shares are normalized to sum to 1, then each is floored at ``epsilon`` (not renormalized after).
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"psi needs two share vectors over the same bins, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("psi needs at least one observation on each side")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


# --- baseline profiles ---------------------------------------------------------------------------------------


def numeric_array(values: Iterable[Any]) -> np.ndarray:
    """Floats, with None, non-numbers and non-finite values as NaN (missing)."""
    values = list(values)
    try:  # the common case, in C: numbers and None (which numpy turns into NaN)
        x = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        x = np.array([float(v) if isinstance(v, int | float) else math.nan for v in values], dtype=np.float64)
    x[~np.isfinite(x)] = math.nan
    return x


def numeric_profile(values: Sequence[Any], bins: int = NUMERIC_BINS) -> dict[str, Any]:
    """Quantile bin edges of the non-missing values and the count in each bin, plus the missing share.

    ``edges`` are the distinct quantiles at 0, 1/bins, ..., 1, taken as data values (``inverted_cdf``: every
    bin holds at least its lower edge, so no reference bin is empty and edges read as real values); bin ``i``
    holds ``edges[i] <= x < edges[i+1]``, the first bin extends down to -inf and the last, which also holds the
    maximum, up to +inf (a window's values beyond the reference range land in the outer bins). Ties collapse
    edges: a feature with few distinct values gets fewer bins.
    """
    x = numeric_array(values)
    present = x[~np.isnan(x)]
    missing = 1 - present.size / x.size if x.size else 0.0
    if present.size == 0:
        return {"kind": "numeric", "edges": [], "counts": [], "missing": missing}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1), method="inverted_cdf"))
    if edges.size == 1:  # a constant: one bin below it, one from it up
        edges = np.array([edges[0], edges[0], edges[0]])
    counts = np.bincount(_bin_index(edges.tolist(), present), minlength=edges.size - 1)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "missing": missing,
    }


def _bin_index(edges: Sequence[float], x: np.ndarray) -> np.ndarray:
    # Interior edges only: below the first interior edge is bin 0, at or above the last is the last bin.
    return np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), x, side="right")


def category(value: Any) -> str | None:
    """The category a value is counted under: JSON spelling for booleans, str() for the rest."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def categorical_profile(values: Sequence[Any], top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Shares (of all rows) of the ``top`` most frequent categories, the rest as ``other``, and ``missing``."""
    n = len(values)
    counts = Counter(c for c in (category(v) for v in values) if c is not None)
    present = sum(counts.values())
    kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    shares = {k: c / n for k, c in kept}
    return {
        "kind": "categorical",
        "shares": shares,
        "other": (present - sum(c for _, c in kept)) / n if n else 0.0,
        "missing": (n - present) / n if n else 0.0,
    }


def profile(column: Column) -> dict[str, Any]:
    return numeric_profile(column.values) if column.kind == "numeric" else categorical_profile(column.values)


def compute_baseline(features: Mapping[str, Column], predictions: Mapping[str, Column]) -> dict[str, Any]:
    """The ``baseline.json`` document for reference data given as feature and prediction columns."""
    rows = max((len(c.values) for c in (*features.values(), *predictions.values())), default=0)
    if rows == 0:
        raise ValueError("the reference data has no rows")
    return {
        "rows": rows,
        "features": {name: profile(c) for name, c in features.items()},
        "predictions": {name: profile(c) for name, c in predictions.items()},
    }


# --- comparing a window against a profile ---------------------------------------------------------------------


@dataclass
class Comparison:
    """A window's distribution against the baseline's, bin by bin (labels, expected and actual shares)."""

    labels: list[str]
    expected: list[float]
    actual: list[float]
    rows: int

    @property
    def psi(self) -> float:
        return psi(self.expected, self.actual)


def compare(baseline_profile: Mapping[str, Any], values: Sequence[Any]) -> Comparison:
    """Bin ``values`` as the baseline profile does; the last bin is always ``(missing)``."""
    if baseline_profile["kind"] == "numeric":
        return _compare_numeric(baseline_profile, values)
    return _compare_categorical(baseline_profile, values)


def _compare_numeric(p: Mapping[str, Any], values: Sequence[Any]) -> Comparison:
    edges = [float(e) for e in p["edges"]]
    counts = np.asarray(p["counts"], dtype=np.float64)
    missing = float(p["missing"])
    expected = [*(counts / counts.sum() * (1 - missing) if counts.sum() else counts), missing]
    x = numeric_array(values)
    present = x[~np.isnan(x)]
    n = max(x.size, 1)
    actual_counts = np.bincount(_bin_index(edges, present), minlength=len(edges) - 1) if edges else np.zeros(0)
    actual = [*(actual_counts / n), (x.size - present.size) / n]
    labels = [_bin_label(edges, i) for i in range(len(edges) - 1)] + [MISSING]
    return Comparison(labels, [float(v) for v in expected], [float(v) for v in actual], x.size)


def _bin_label(edges: Sequence[float], i: int) -> str:
    low = "-inf" if i == 0 else f"{edges[i]:.4g}"
    high = "+inf" if i == len(edges) - 2 else f"{edges[i + 1]:.4g}"
    return f"[{low}, {high})"


def _compare_categorical(p: Mapping[str, Any], values: Sequence[Any]) -> Comparison:
    shares: Mapping[str, float] = p["shares"]
    counts = Counter(category(v) for v in values)
    n = max(len(values), 1)
    missing = counts.pop(None, 0)
    known = [counts.get(k, 0) for k in shares]
    other = sum(counts.values()) - sum(known)
    return Comparison(
        [*shares, OTHER, MISSING],
        [*(float(s) for s in shares.values()), float(p["other"]), float(p["missing"])],
        [*(c / n for c in known), other / n, missing / n],
        len(values),
    )


def compare_distributions(reference: Sequence[Any], candidate: Sequence[Any], kind: Kind = "categorical") -> float:
    """PSI of ``candidate``'s distribution against ``reference``'s, both raw values (e.g. two versions'
    predictions on the same traffic window): the reference is profiled as a baseline would be, the candidate
    binned the same way. Read it with :func:`verdict` (> 0.25: the candidate predicts differently)."""
    if not reference or not candidate:
        raise ValueError("compare_distributions needs values on both sides")
    return compare(profile(Column(kind, list(reference))), candidate).psi


def prediction_divergence(old: Mapping[str, Column], new: Mapping[str, Column], min_rows: int = 50) -> float | None:
    """Canary analysis: the largest PSI, over the outputs both versions gave, of the new version's predictions
    against the old version's on the same traffic; None while the new side has fewer than ``min_rows`` rows."""
    worst: float | None = None
    for name, column in new.items():
        reference = old.get(name)
        if reference is None or len(column.values) < min_rows or not reference.values:
            continue
        value = compare_distributions(reference.values, column.values, reference.kind)
        worst = value if worst is None else max(worst, value)
    return worst


@dataclass
class DriftEntry:
    section: Literal["feature", "prediction"]
    name: str
    kind: Kind
    rows: int
    psi: float | None  # None: not in the window (excluded from capture, or no rows)
    comparison: Comparison | None

    @property
    def verdict(self) -> Verdict | None:
        return None if self.psi is None else verdict(self.psi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "psi": None if self.psi is None else round(self.psi, 6),
            "verdict": self.verdict,
        }


@dataclass
class DriftReport:
    rows: int
    entries: list[DriftEntry]

    def _max(self, section: str) -> float | None:
        scores = [e.psi for e in self.entries if e.section == section and e.psi is not None]
        return max(scores) if scores else None

    @property
    def feature_drift_max(self) -> float | None:
        return self._max("feature")

    @property
    def prediction_drift(self) -> float | None:
        """The largest PSI over the baseline's prediction outputs."""
        return self._max("prediction")

    def worst(self, section: str = "feature", n: int = 4) -> list[DriftEntry]:
        scored = [e for e in self.entries if e.section == section and e.psi is not None]
        return sorted(scored, key=lambda e: -(e.psi or 0.0))[:n]

    def to_dict(self) -> dict[str, Any]:
        fmax, pdrift = self.feature_drift_max, self.prediction_drift
        return {
            "rows": self.rows,
            "feature_drift_max": None if fmax is None else round(fmax, 6),
            "prediction_drift": None if pdrift is None else round(pdrift, 6),
            "entries": [e.to_dict() for e in self.entries],
        }


def drift_report(
    baseline: Mapping[str, Any], features: Mapping[str, Column], predictions: Mapping[str, Column], rows: int
) -> DriftReport:
    """Every feature and prediction of the baseline against the window's columns of the same name."""
    entries: list[DriftEntry] = []
    for section, profiles, columns in (
        ("feature", baseline.get("features", {}), features),
        ("prediction", baseline.get("predictions", {}), predictions),
    ):
        for name, p in profiles.items():
            column = columns.get(name)
            if column is None or not column.values:
                entries.append(DriftEntry(section, name, p["kind"], 0, None, None))  # type: ignore[arg-type]
                continue
            comparison = compare(p, column.values)
            entries.append(
                DriftEntry(section, name, p["kind"], len(column.values), comparison.psi, comparison)  # type: ignore[arg-type]
            )
    return DriftReport(rows, entries)
