"""``modelrail baseline`` and ``modelrail drift``: a bundle's reference statistics, and captured traffic against them.

Both use the drift monitor's own code (``functions/monitor``), so a report on a laptop reads exactly as the
scheduled function's metrics do. Reference data runs through the bundle's model with onnxruntime to get the
reference prediction distribution.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from functions.monitor.stats import DriftReport, compute_baseline, drift_report
from spec.bundle import BASELINE_FILE, ModelBundle

from .readers import DataError, capture_columns, is_capture, load_model, model_columns

BaselineError = DataError  # input the baseline or drift command cannot use; the message names the file
FEATURE_NAMES = "feature_names"  # in baseline.json: a feature's display name (a CSV header's, a Parquet column's)


# --- baseline ---------------------------------------------------------------------------------------------------


def write_baseline(bundle: ModelBundle, data: Path, *, drop: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any]]:
    """Compute the baseline from ``data`` and write it into the bundle folder as baseline.json; ``drop``: table
    columns that are no model input (e.g. the labels)."""
    if not bundle.root.is_dir():
        raise BaselineError(
            f"{bundle.root}: a bare .onnx bundle has no folder for {BASELINE_FILE}; use a bundle folder"
        )
    columns, names = model_columns(load_model(bundle.model_path, bundle.name), data, drop=drop)
    baseline = compute_baseline(columns.features, columns.predictions)
    if names:
        baseline[FEATURE_NAMES] = names
    path = bundle.root / BASELINE_FILE
    path.write_text(json.dumps(baseline, indent=1) + "\n")
    return path, baseline


# --- drift ------------------------------------------------------------------------------------------------------


def read_baseline(bundle: ModelBundle) -> dict[str, Any]:
    path = bundle.baseline_path
    if path is None:
        raise BaselineError(
            f"{bundle.root}: no {BASELINE_FILE}; compute it: python -m modelrail baseline {bundle.root} --data FILE"
        )
    try:
        baseline = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(baseline, dict) or not isinstance(baseline.get("features"), dict):
        raise BaselineError(f"{path}: not a baseline (expected an object with 'features' and 'predictions')")
    return baseline


def drift(bundle: ModelBundle, data: Path, version: str | None = None) -> DriftReport:
    """The drift of ``data`` against the bundle's baseline: capture records (a file or the capture layout), or a
    table or OIP requests run through the bundle's model, read as ``baseline`` reads them."""
    baseline = read_baseline(bundle)
    if is_capture(data):
        columns = capture_columns(data, bundle.name, version)
    else:
        columns, _ = model_columns(load_model(bundle.model_path, bundle.name), data)
    report = drift_report(baseline, columns.features, columns.predictions, columns.rows)
    names = baseline.get(FEATURE_NAMES) or {}
    for entry in report.entries:
        if entry.section == "feature" and isinstance(names.get(entry.name), str):
            entry.name = names[entry.name]
    return report


VERDICT_STYLE = {"stable": "green", "moderate": "yellow", "significant": "bold red"}


def print_report(report: DriftReport, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for header, justify in (("", "left"), ("name", "left"), ("kind", "left"), ("rows", "right")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    table.add_column("PSI", justify="right")
    table.add_column("verdict")
    for section in ("feature", "prediction"):
        entries = [e for e in report.entries if e.section == section]
        for e in sorted(entries, key=lambda e: -1.0 if e.psi is None else -e.psi):
            verdict = e.verdict or "not captured"
            table.add_row(
                section,
                e.name,
                e.kind,
                str(e.rows),
                "-" if e.psi is None else f"{e.psi:.3f}",
                f"[{VERDICT_STYLE.get(verdict, 'dim')}]{verdict}[/]",
            )
    console = Console(width=max(120, Console().width))
    console.print(title, highlight=False)
    console.print(table)
    fmax, pdrift = report.feature_drift_max, report.prediction_drift
    console.print(
        f"feature drift (max PSI): {'-' if fmax is None else f'{fmax:.3f}'}   "
        f"prediction drift: {'-' if pdrift is None else f'{pdrift:.3f}'}   "
        "(PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant)",
        highlight=False,
    )


def plot(report: DriftReport, png: Path, title: str, worst: int = 4) -> int:
    """A PNG with the worst features' distributions (and the worst prediction's) against the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = report.worst("feature", worst) + report.worst("prediction", 1)
    if not entries:
        raise BaselineError("nothing to plot: no feature or prediction of the baseline was captured")
    fig, axes = plt.subplots(len(entries), 1, figsize=(9, 2.6 * len(entries)), squeeze=False)
    for ax, entry in zip(axes[:, 0], entries, strict=True):
        c = entry.comparison
        assert c is not None
        x = np.arange(len(c.labels))
        ax.bar(x - 0.2, c.expected, width=0.4, label="baseline", color="#8da0cb")
        ax.bar(x + 0.2, c.actual, width=0.4, label=f"captured ({c.rows} rows)", color="#fc8d62")
        ax.set_xticks(x, c.labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("share")
        ax.set_title(f"{entry.section} {entry.name}: PSI {entry.psi:.3f} ({entry.verdict})", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return len(entries)
