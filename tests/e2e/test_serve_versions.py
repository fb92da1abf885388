"""``serve`` with several bundles of one model: its versions over HTTP, the newest by default; clashes in one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from modelrail.cli import main
from modelrail.local.environment import LocalEnvironment
from spec.bundle import ModelBundle

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "models" / "iris"
RETRAINED = ROOT / "models" / "iris-candidates" / "retrained"  # also named "iris" in its modelrail.json
SHUFFLED = ROOT / "models" / "iris-candidates" / "shuffled"
ROW = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [6.2, 2.8, 4.8, 1.8]}]}


@pytest.fixture(scope="module")
def served() -> Iterator[LocalEnvironment]:
    with LocalEnvironment([ModelBundle.load(IRIS), ModelBundle.load(RETRAINED)]) as env:
        yield env


def test_two_bundles_of_one_model_are_its_versions_newest_by_default(served: LocalEnvironment) -> None:
    url = served.url
    default = requests.post(f"{url}/v2/models/iris/infer", json=ROW, timeout=30)
    assert default.status_code == 200
    assert default.json()["model_version"] == "2"
    assert default.headers["x-model-version"] == "2"
    for version in ("1", "2"):
        answer = requests.post(f"{url}/v2/models/iris/versions/{version}/infer", json=ROW, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["model_version"] == version
        meta = requests.get(f"{url}/v2/models/iris/versions/{version}", timeout=30).json()
        assert meta["parameters"]["sha256"] == ModelBundle.load(IRIS if version == "1" else RETRAINED).sha256()
    assert requests.get(f"{url}/v2/models/iris", timeout=30).json()["versions"] == ["2", "1"]
    missing = requests.post(f"{url}/v2/models/iris/versions/3/infer", json=ROW, timeout=30)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no version '3' of this model is served here; versions: 1, 2"}
    server = requests.get(f"{url}/v2", timeout=30).json()
    assert server["models"] == ["iris"]
    assert server["extensions"] == ["binary_tensor_data"]  # Triton's name for the extension the API speaks


def test_a_real_clash_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, source in ((a, IRIS), (b, SHUFFLED)):
        shutil.copytree(source, folder)
        settings = json.loads((folder / "modelrail.json").read_text())
        (folder / "modelrail.json").write_text(json.dumps({**settings, "name": "iris", "version": "7"}))
    assert main(["serve", str(a), str(b), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"modelrail: {a} and {b} are both version 7 of model 'iris': set \"version\"")
    assert main(["serve", str(a), str(a), "--port", "0"]) == 2
    assert capsys.readouterr().err == f"modelrail: {a} is given twice\n"
