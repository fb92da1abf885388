"""``modelrail init`` on a model the test trains, and ``drift`` on tables and requests read as ``baseline`` reads
them: exit status, what they print, the files they write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from functions.inference.model import OnnxModel
from modelrail.cli import main
from tests.user_model import FEATURES, LABEL, dataset, train, write_csv


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.onnx, data.csv with the label column) of a classifier trained here."""
    folder = tmp_path_factory.mktemp("user")
    x, y = dataset()
    return train(folder / "exported.onnx", x, y), write_csv(folder / "data.csv", x, y)


def test_init_with_labels_makes_an_accuracy_set_with_a_pass_rate_it_shows(
    made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, data = made
    bundle = tmp_path / "cancer"
    assert main(["init", str(bundle), "--model", str(model), "--data", str(data), "--labels", LABEL]) == 0
    out = capsys.readouterr().out
    cases = [json.loads(line) for line in (bundle / "acceptance.jsonl").read_text().splitlines()]
    assert len(cases) == 100
    with data.open() as f:
        truth = {tuple(round(float(v), 3) for v in row[:-1]): int(row[-1]) for row in list(csv.reader(f))[1:]}
    for case in cases:  # the true label of that row, not the model's answer
        assert case["expected"] == {"output_label": [truth[tuple(round(v, 3) for v in case["inputs"][0]["data"])]]}
        assert case["inputs"][0]["name"] == "features"
        assert case["inputs"][0]["shape"] == [1, 6]
    onnx = OnnxModel("cancer", "1", model).load()
    rows = np.array([c["inputs"][0]["data"] for c in cases], dtype=np.float32)
    right = np.mean(
        onnx.predict({"features": rows}, ["output_label"])["output_label"]
        == [c["expected"]["output_label"][0] for c in cases]
    )
    assert 0.7 < right < 1.0
    settings = json.loads((bundle / "modelrail.json").read_text())
    assert settings["name"] == "cancer"
    rate = settings["acceptance"]["min_pass_rate"]
    assert right - 0.03 <= rate <= right - 0.02  # two points under what it gets right, to the percent below
    assert f"this model gets {right:.1%} right; the gate asks >= {rate:.0%}" in out
    assert "--pass-rate" in out
    baseline = json.loads((bundle / "baseline.json").read_text())
    assert baseline["rows"] == 400
    assert baseline["feature_names"] == {f"features[{j}]": name for j, name in enumerate(FEATURES)}
    assert LABEL not in json.dumps(baseline["feature_names"])  # the label column is no input
    assert '{"bundle": ' in out
    assert "python -m modelrail validate " + str(bundle) in out

    assert main(["init", str(bundle), "--model", str(model), "--data", str(data), "--labels", LABEL,
                 "--pass-rate", "0.5", "--force"]) == 0  # fmt: skip
    assert json.loads((bundle / "modelrail.json").read_text())["acceptance"]["min_pass_rate"] == 0.5
    assert "the gate asks >= 50%" in capsys.readouterr().out


def test_init_without_labels_makes_a_regression_set_of_the_models_answers(
    made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, data = made
    bundle = tmp_path / "cancer"
    assert main(["init", str(bundle), "--model", str(model), "--data", str(data), "--cases", "20"]) == 2
    # without --labels the label column is one more column: the data must hold the model's inputs only
    assert "give 6 columns in order" in capsys.readouterr().err
    inputs_only = write_csv(tmp_path / "inputs.csv", *dataset()[:1])
    assert main(["init", str(bundle), "--model", str(model), "--data", str(inputs_only), "--cases", "20"]) == 0
    assert "20 cases" in capsys.readouterr().out
    cases = [json.loads(line) for line in (bundle / "acceptance.jsonl").read_text().splitlines()]
    onnx = OnnxModel("cancer", "1", model).load()
    for case in cases:
        answer = onnx.predict({"features": np.array([case["inputs"][0]["data"]], dtype=np.float32)}, list(onnx.outputs))
        assert case["expected"]["output_label"] == [int(answer["output_label"][0])]
        probabilities = case["expected"]["output_probability"][0]
        assert probabilities.keys() == {"0", "1"}
        assert abs(probabilities["1"] - answer["output_probability"][0][1]) < 1e-6
    assert "acceptance" not in json.loads((bundle / "modelrail.json").read_text())  # every case must match


def test_init_refuses_an_existing_bundle_naming_what_it_would_overwrite(
    made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, data = made
    bundle = tmp_path / "cancer"
    assert main(["init", str(bundle), "--model", str(model)]) == 0
    assert "no acceptance.jsonl" in capsys.readouterr().out
    assert json.loads((bundle / "modelrail.json").read_text())["acceptance"]["min_pass_rate"] == 0
    before = (bundle / "modelrail.json").read_text()
    assert main(["init", str(bundle), "--model", str(model), "--data", str(data), "--labels", LABEL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already a bundle; --force would overwrite model.onnx, modelrail.json" in err
    assert (bundle / "modelrail.json").read_text() == before
    assert not (bundle / "acceptance.jsonl").exists()
    assert main(["init", str(bundle), "--model", str(model), "--pass-rate", "0.9"]) == 2
    assert "give --labels too" in capsys.readouterr().err
    assert main(["init", str(bundle), "--model", str(model), "--data", str(data), "--labels", "nope", "--force"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert (bundle / "modelrail.json").read_text() == before  # nothing written when the data cannot be used


@pytest.mark.parametrize("form", ["csv", "parquet", "jsonl"])
def test_drift_reads_tables_and_requests_as_baseline_does(
    made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    model, data = made
    bundle = tmp_path / "cancer"
    assert main(["init", str(bundle), "--model", str(model), "--data", str(data), "--labels", LABEL]) == 0
    x, _ = dataset()
    shifted = x[:200].copy()
    shifted[:, 3] += 3.0  # "worst area" measured in other units
    live = tmp_path / f"live.{form}"
    if form == "csv":
        write_csv(live, shifted)
    elif form == "parquet":
        pq.write_table(pa.table({name: shifted[:, j] for j, name in enumerate(FEATURES)}), live)
    else:
        request = {"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", "data": None}]}
        live.write_text("".join(
            json.dumps({"inputs": [{**request["inputs"][0], "data": row.tolist()}]}) + "\n" for row in shifted
        ))  # fmt: skip
    capsys.readouterr()
    png = tmp_path / "drift.png"
    assert main(["drift", "--baseline", str(bundle), "--capture", str(live), "--png", str(png)]) == 1
    out = capsys.readouterr().out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") >= 6}
    assert set(rows) == {*FEATURES, "output_label", "output_probability"}  # the CSV header's names
    assert "significant" in rows["worst area"]
    assert "stable" in rows["mean radius"]
    assert "SIGNIFICANT DRIFT: worst area" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
