"""``modelrail tour`` with any bundle: requests made from its acceptance set, or from its signature alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrail.cli import main
from tests.user_model import LABEL, dataset, train, write_csv


@pytest.mark.parametrize("with_data", [True, False])
def test_tour_takes_a_users_own_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str], with_data: bool) -> None:
    x, y = dataset(rows=120)
    model = train(tmp_path / "exported.onnx", x, y)
    data = ["--data", str(write_csv(tmp_path / "data.csv", x, y)), "--labels", LABEL] if with_data else []
    assert main(["init", str(tmp_path / "cancer"), "--model", str(model), *data]) == 0
    capsys.readouterr()
    assert main(["tour", "--bundle", str(tmp_path / "cancer")]) == 0
    out = capsys.readouterr().out
    assert "6/6 answers as expected" in out
    assert "POST /v2/models/cancer/infer -> 200" in out
    assert "POST /v1/models/cancer:predict -> 200" in out
    assert "unknown input 'no_such_input': model 'cancer' expects features (FP32, shape [-1, 6])" in out
    assert ("from its acceptance set" in out) == with_data
    assert f"next: python -m modelrail serve {tmp_path / 'cancer'}" in out
