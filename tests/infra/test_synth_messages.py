"""What `make synth` (python app.py) tells the user: the layer build's progress, its failure in one line naming the
cause, and the cdk-nag summary it ends with."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

import app
from infra.nag_summary import nag_counts
from layers.build import LayerBuildError, build_layer, pinned_requirements

# pip reads its options from PIP_* variables: an index on a closed loopback port is an index out of reach, and no
# configuration file adds another one.
UNREACHABLE_INDEX = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "1", "PIP_CONFIG_FILE": os.devnull}


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in UNREACHABLE_INDEX.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)


def test_a_layer_build_without_the_package_index_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    offline(monkeypatch)
    lines: list[str] = []
    with pytest.raises(LayerBuildError) as failure:
        build_layer("arm64", build_dir=tmp_path, log=lines.append)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(
        "layer arm64: the package index could not be reached (Failed to establish a new connection: [Errno 111] "
        "Connection refused); building the layer downloads its pinned wheels once"
    )
    assert "Retrying" not in message  # pip's urllib3 retry warnings stay out
    wheels = len(pinned_requirements())
    assert lines[0].startswith(
        f"layer arm64: downloading {wheels} pinned wheels for Python 3.12 from the package index"
    )
    assert "needed once" in lines[0]


def test_synth_without_the_package_index_ends_in_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline(monkeypatch)
    monkeypatch.setattr(app, "build_layer", functools.partial(build_layer, build_dir=tmp_path / "no-cache"))
    assert app.main() == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"layer arm64: downloading {len(pinned_requirements())} pinned wheels")
    assert err[-1].startswith("modelrail: layer arm64: the package index could not be reached (")
    assert not any("Traceback" in line or "WARNING: Retrying" in line for line in err)


def test_synth_ends_with_the_cdk_nag_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create = app.create_app
    monkeypatch.setattr(app, "create_app", lambda: create(outdir=str(tmp_path / "cdk.out")))
    assert app.main() == 0
    last = capsys.readouterr().err.splitlines()[-1]
    counts = nag_counts(tmp_path / "cdk.out")
    assert counts["stacks"] == 3
    assert counts["acknowledged"] >= 30  # every reviewed finding of the three stacks, each with its reason
    assert last == (
        "cdk-nag AwsSolutions passed: 0 unacknowledged finding(s), 0 warning(s), "
        f"{counts['acknowledged']} acknowledged with their reasons (infra/), in 3 stacks"
    )
