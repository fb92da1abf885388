"""``modelrail baseline`` and ``modelrail drift``: a bundle's reference statistics, and captured traffic against them.

Both use the drift monitor's own code (``functions/monitor``), so a report on a laptop reads exactly as the
scheduled function's metrics do. Reference data runs through the bundle's model with onnxruntime to get the
reference prediction distribution.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from functions.inference.datatypes import OIP_TO_NUMPY
from functions.inference.errors import BadRequest
from functions.inference.model import ModelLoadError, OnnxModel, TensorSpec
from functions.inference.protocol import decode_v2, dumps, encode_output, parse_body
from functions.monitor.capture import Columns, parse_records
from functions.monitor.stats import DriftReport, compute_baseline, drift_report
from spec.bundle import BASELINE_FILE, ModelBundle

CHUNK_ROWS = 4096
CAPTURE_SUFFIXES = (".gz", ".jsonl", ".json", ".ndjson")


class BaselineError(ValueError):
    """Input the baseline or drift command cannot use; the message names the file and what was expected."""


# --- baseline ---------------------------------------------------------------------------------------------------


def load_model(bundle: ModelBundle) -> OnnxModel:
    try:
        return OnnxModel(bundle.name, "reference", bundle.model_path, max_batch_rows=10**9).load()
    except ModelLoadError as exc:
        raise BaselineError(f"{bundle.model_path}: {exc}") from exc


def input_features(spec: TensorSpec, width: int | None = None) -> list[str]:
    """The feature names of one model input (shape [-1] or [-1, 1]: the input's name; [-1, k]: name[j])."""
    dims = spec.shape[1:]
    if not dims or dims == (1,):
        return [spec.name]
    k = math.prod(d for d in dims if d is not None) if None not in dims else width
    if k is None:
        raise BaselineError(f"input {spec.describe()} has a dynamic feature dimension: the data must give its width")
    return [f"{spec.name}[{j}]" for j in range(k)]


def reference_columns(bundle: ModelBundle, data: Path) -> Columns:
    """The reference data's feature and prediction columns: a table (CSV, Parquet) or OIP requests (JSONL)."""
    if not data.is_file():
        raise BaselineError(f"{data}: no such file (expected CSV, Parquet or JSONL of inference requests)")
    model = load_model(bundle)
    columns = Columns()
    suffix = data.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        for feeds in _request_feeds(model, data):
            _run(model, feeds, columns)
        return columns
    if suffix == ".csv":
        header, table = _read_csv(data)
    elif suffix in (".parquet", ".pq"):
        header, table = _read_parquet(data)
    else:
        raise BaselineError(f"{data}: unknown data format {suffix!r}; expected .csv, .parquet or .jsonl")
    feeds = _table_feeds(model, data, header, table)
    rows = len(table[0]) if table else 0
    if rows == 0:
        raise BaselineError(f"{data}: no data rows")
    for begin in range(0, rows, CHUNK_ROWS):
        _run(model, {name: array[begin : begin + CHUNK_ROWS] for name, array in feeds.items()}, columns)
    return columns


def write_baseline(bundle: ModelBundle, data: Path) -> tuple[Path, dict[str, Any]]:
    """Compute the baseline from ``data`` and write it into the bundle folder as baseline.json."""
    if not bundle.root.is_dir():
        raise BaselineError(
            f"{bundle.root}: a bare .onnx bundle has no folder for {BASELINE_FILE}; use a bundle folder"
        )
    columns = reference_columns(bundle, data)
    baseline = compute_baseline(columns.features, columns.predictions)
    path = bundle.root / BASELINE_FILE
    path.write_text(json.dumps(baseline, indent=1) + "\n")
    return path, baseline


def _run(model: OnnxModel, feeds: dict[str, np.ndarray], columns: Columns) -> None:
    try:
        results = model.predict(feeds, model.output_names(None))
    except Exception as exc:
        raise BaselineError(f"the model cannot run on the reference data: {exc}") from exc
    # Through JSON exactly as the capture writes it: FP32 5.4 is captured as 5.4, not 5.400000095367432, and a
    # quantile edge at a tied value must compare the same way on both sides.
    document = orjson.loads(
        dumps(
            {
                "inputs": [
                    {"name": n, "shape": list(a.shape), "datatype": model.inputs[n].datatype, "data": a.ravel()}
                    for n, a in feeds.items()
                ],
                "outputs": [encode_output(n, v) for n, v in results.items()],
            }
        )
    )
    columns.add(document["inputs"], document["outputs"])


def _request_feeds(model: OnnxModel, path: Path) -> Iterator[dict[str, np.ndarray]]:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            request = decode_v2(parse_body(line), model)
        except BadRequest as exc:
            raise BaselineError(f"{path}:{number}: {exc}") from exc
        yield request.feeds


def _cell(text: str) -> Any:
    if text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _read_csv(path: Path) -> tuple[list[str] | None, list[list[Any]]]:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        return None, []
    header: list[str] | None = None
    if not all(isinstance(_cell(c), float) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(header) if header else len(rows[0])
    for number, row in enumerate(rows, 2 if header else 1):
        if len(row) != width:
            raise BaselineError(f"{path}:{number}: {len(row)} columns, expected {width}")
    return header, [[_cell(row[j]) for row in rows] for j in range(width)]


def _read_parquet(path: Path) -> tuple[list[str] | None, list[list[Any]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return list(table.column_names), [table.column(name).to_pylist() for name in table.column_names]


def _table_feeds(
    model: OnnxModel, path: Path, header: list[str] | None, table: list[list[Any]]
) -> dict[str, np.ndarray]:
    """Model inputs from table columns: by feature name when the header has them all, else positionally for a
    single input."""
    specs = list(model.inputs.values())
    by_name: dict[str, list[Any]] = dict(zip(header, table, strict=True)) if header else {}
    try:
        names = {spec.name: input_features(spec) for spec in specs}
    except BaselineError:
        names = {}
    if names and header and all(f in by_name for fs in names.values() for f in fs):
        return {spec.name: _input_array(spec, [by_name[f] for f in names[spec.name]]) for spec in specs}
    if len(specs) == 1:
        spec = specs[0]
        expected = input_features(spec, len(table))
        if len(expected) == len(table):
            return {spec.name: _input_array(spec, table)}
    wanted = [f for spec in specs for f in input_features(spec, len(table) if len(specs) == 1 else None)]
    got = f"columns {header}" if header else f"{len(table)} unnamed columns"
    raise BaselineError(
        f"{path}: {got} do not match model '{model.name}': name the columns after its features {wanted}"
        + (f", or give {len(wanted)} columns in order" if len(specs) == 1 else "")
    )


def _input_array(spec: TensorSpec, columns: list[list[Any]]) -> np.ndarray:
    datatype = spec.datatype or "BYTES"
    if datatype == "BYTES":
        array = np.array([["" if v is None else _text(v) for v in col] for col in columns], dtype=object).T
    else:
        values = [[math.nan if v is None else v for v in col] for col in columns]
        try:
            array = np.array(values, dtype=np.float64).T.astype(OIP_TO_NUMPY[datatype])
        except (TypeError, ValueError) as exc:
            raise BaselineError(f"input '{spec.name}' is {datatype}: the data holds a non-number ({exc})") from exc
    rank = len(spec.shape)
    if rank == 1:
        return array[:, 0]
    return array.reshape((array.shape[0], *(d if d is not None else -1 for d in spec.shape[1:])))


def _text(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


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


def capture_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
    raise BaselineError(f"{path}: no such file or folder of capture records")


def capture_columns(path: Path, model: str, version: str | None = None) -> Columns:
    """Columns of the model's capture records under ``path`` (records of other models are left out)."""
    files = capture_files(path)
    columns = Columns()
    others: set[str] = set()
    for file in files:
        for record in parse_records(file.read_bytes(), str(file)):
            name = record.get("model")
            if name is not None and name != model:
                others.add(str(name))
                continue
            if version is not None and str(record.get("version")) != version:
                continue
            columns.add_record(record)
    if columns.records == 0:
        found = f" (records of {', '.join(sorted(others))} only)" if others else ""
        raise BaselineError(
            f"{path}: no capture records of model '{model}'{' version ' + version if version else ''} in "
            f"{len(files)} file(s){found}"
        )
    return columns


def drift(bundle: ModelBundle, capture: Path, version: str | None = None) -> DriftReport:
    baseline = read_baseline(bundle)
    columns = capture_columns(capture, bundle.name, version)
    return drift_report(baseline, columns.features, columns.predictions, columns.rows)


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
