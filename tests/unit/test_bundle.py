"""Model bundles: a folder or a bare .onnx file, settings validated with the file and field named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spec.bundle import BundleError, ModelBundle

IRIS = Path(__file__).resolve().parents[2] / "models" / "iris"


def test_sample_bundle() -> None:
    bundle = ModelBundle.load(IRIS)
    assert bundle.name == "iris"
    assert bundle.acceptance_path == IRIS / "acceptance.jsonl"
    assert bundle.artifact_key() == f"models/iris/{bundle.sha256()}.onnx"


def test_bare_onnx_file_is_a_bundle_named_by_its_stem(tmp_path: Path) -> None:
    model = tmp_path / "fraud-v3.onnx"
    shutil.copy(IRIS / "model.onnx", model)
    bundle = ModelBundle.load(model)
    assert bundle.name == "fraud-v3"
    assert bundle.acceptance_path is None
    assert bundle.settings.max_batch_rows == 1024


def test_settings_name_overrides_the_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "my model"
    shutil.copytree(IRIS, folder)
    (folder / "modelrail.json").write_text(json.dumps({"name": "flowers"}))
    assert ModelBundle.load(folder).name == "flowers"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("{", "modelrail.json: not valid JSON"),
        (json.dumps({"max_batch_rows": 0}), "max_batch_rows: Input should be greater than or equal to 1"),
        (json.dumps({"max_rows": 5}), "max_rows: Extra inputs are not permitted"),
        (json.dumps({"name": "bad name!"}), "name: String should match pattern"),
    ],
)
def test_bad_settings_name_the_file_and_field(tmp_path: Path, settings: str, expected: str) -> None:
    folder = tmp_path / "m"
    shutil.copytree(IRIS, folder)
    (folder / "modelrail.json").write_text(settings)
    with pytest.raises(BundleError, match="modelrail.json") as caught:
        ModelBundle.load(folder)
    assert expected in str(caught.value)


def test_missing_model_and_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        ModelBundle.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="missing model.onnx"):
        ModelBundle.load(tmp_path / "empty")


def test_folder_name_that_cannot_be_a_model_name(tmp_path: Path) -> None:
    folder = tmp_path / "my model"
    folder.mkdir()
    shutil.copy(IRIS / "model.onnx", folder / "model.onnx")
    with pytest.raises(BundleError, match='set "name" in modelrail.json'):
        ModelBundle.load(folder)
