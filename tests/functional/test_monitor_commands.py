"""``modelrail baseline`` and ``modelrail drift`` on the iris sample: exit status, what they print and write."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from functions.inference.model import OnnxModel
from functions.inference.protocol import dumps, encode_output
from modelrail.cli import main

IRIS = Path(__file__).resolve().parents[2] / "models" / "iris"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "iris"
    shutil.copytree(IRIS, folder)
    return folder


def reference_rows() -> np.ndarray:
    with (IRIS / "reference.csv").open() as f:
        return np.array([[float(v) for v in row] for row in list(csv.reader(f))[1:]], dtype=np.float32)


def write_capture(folder: Path, rows: np.ndarray, model: str = "iris", version: str = "2") -> Path:
    """Capture records as the inference function writes them: one request a record, the model's real answers."""
    onnx = OnnxModel("iris", version, IRIS / "model.onnx").load()
    lines = []
    for i in range(0, len(rows), 2):
        batch = rows[i : i + 2]
        results = onnx.predict({"float_input": batch}, list(onnx.outputs))
        record = {
            "model": model,
            "version": version,
            "time": "2026-11-28T21:00:00.000+00:00",
            "request_id": str(i),
            "inputs": [{"name": "float_input", "shape": list(batch.shape), "datatype": "FP32", "data": batch.ravel()}],
            "outputs": [encode_output(n, v) for n, v in results.items()],
            "excluded": [],
        }
        lines.append(dumps(record))
    path = folder / f"model={model}" / f"version={version}" / "hour=2026-11-28-21" / "part-0.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return folder


def table_rows(out: str) -> dict[str, str]:
    """The drift table's rows by feature or prediction name."""
    return {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") >= 6}


def test_baseline_from_csv_reproduces_the_committed_sample_baseline(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bundle / "baseline.json").unlink()
    assert main(["baseline", str(bundle), "--data", str(bundle / "reference.csv")]) == 0
    assert "120 rows, 4 features, predictions output_label, output_probability" in capsys.readouterr().out
    written = json.loads((bundle / "baseline.json").read_text())
    assert written == json.loads((IRIS / "baseline.json").read_text())  # the shipped baseline is up to date
    assert sorted(written["features"]) == [f"float_input[{j}]" for j in range(4)]
    # the model's answers on its own training data: about a third of each species
    shares = written["predictions"]["output_label"]["shares"]
    assert sorted(shares) == ["0", "1", "2"]
    assert all(0.3 < s < 0.37 for s in shares.values())


def test_baseline_from_inference_requests(bundle: Path) -> None:
    assert main(["baseline", str(bundle), "--data", str(bundle / "acceptance.jsonl")]) == 0
    written = json.loads((bundle / "baseline.json").read_text())
    assert written["rows"] == 30
    assert written["predictions"]["output_probability"]["kind"] == "categorical"


def test_baseline_from_parquet_by_feature_name(bundle: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = reference_rows()
    table = {f"float_input[{j}]": rows[:, j].tolist() for j in range(4)}
    table["species_note"] = ["ignored"] * len(rows)  # extra columns are fine when features are named
    pq.write_table(pa.table(table), tmp_path / "reference.parquet")
    assert main(["baseline", str(bundle), "--data", str(tmp_path / "reference.parquet")]) == 0
    shipped = json.loads((IRIS / "baseline.json").read_text())
    del shipped["feature_names"]  # the CSV's header names the features; these columns are named after them
    assert json.loads((bundle / "baseline.json").read_text()) == shipped


def test_baseline_refuses_columns_that_do_not_fit_the_model(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "three.csv"
    data.write_text("a,b,c\n1,2,3\n")
    assert main(["baseline", str(bundle), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "three.csv" in err
    assert "float_input[3]" in err
    assert "give 4 columns in order" in err


def test_drift_of_unchanged_traffic_is_stable(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = write_capture(tmp_path / "capture", reference_rows())
    assert main(["drift", "--baseline", str(bundle), "--capture", str(capture)]) == 0
    out = capsys.readouterr().out
    assert "120 rows" in out
    rows = table_rows(out)
    # the reference CSV's header names the features in the table (the model calls them float_input[0..3])
    assert sorted(rows) == [
        "output_label",
        "output_probability",
        "petal_length_cm",
        "petal_width_cm",
        "sepal_length_cm",
        "sepal_width_cm",
    ]
    assert all("0.000" in row and "stable" in row for row in rows.values())  # the reference itself: PSI 0


def test_drift_of_shifted_petals_is_significant_with_a_plot(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = reference_rows()
    rows[:, 2] += 2.0  # petal length measured 2 cm longer: a unit or calibration change upstream
    capture = write_capture(tmp_path / "capture", rows)
    png = tmp_path / "plots" / "drift.png"
    assert main(["drift", "--baseline", str(bundle), "--capture", str(capture), "--png", str(png)]) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert "significant" in rows["petal_length_cm"]
    assert "stable" in rows["sepal_width_cm"]
    assert "SIGNIFICANT DRIFT: petal_length_cm" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_drift_needs_a_baseline_and_records_of_the_model(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = write_capture(tmp_path / "capture", reference_rows()[:10], model="other")
    assert main(["drift", "--baseline", str(bundle), "--capture", str(capture)]) == 2
    assert "no capture records of model 'iris'" in capsys.readouterr().err
    (bundle / "baseline.json").unlink()
    assert main(["drift", "--baseline", str(bundle), "--capture", str(capture)]) == 2
    assert "modelrail baseline" in capsys.readouterr().err
