"""``rehearse --baseline A --candidate C`` on the user's own bundles: an exit status that says whether the rollout
did what the user meant, and no promotion claimed for a candidate whose traffic proved nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "models" / "iris"
CANDIDATES = ROOT / "models" / "iris-candidates"


def rehearse(tmp_path: Path, candidate: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelrail",
            "rehearse",
            "--baseline",
            str(BASELINE),
            "--candidate",
            str(candidate),
            "--time-scale",
            "120",
            "--rate",
            "60",
            "--report",
            str(report),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.is_file(), result.stdout + result.stderr
    [scenario] = json.loads(report.read_text())["scenarios"]
    return result, scenario


def client_mistakes(tmp_path: Path) -> Path:
    """Traffic the model cannot score: every request declares BOOL for the FP32 input (a 400 naming the input)."""
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    path = tmp_path / "mistakes.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "BOOL", "data": r}]})
            for r in rows
        )
    )
    return path


@pytest.mark.parametrize(("expect", "exit_code"), [(None, 1), ("inconclusive", 0)])
def test_a_candidate_that_scores_no_rows_is_inconclusive(tmp_path: Path, expect: str | None, exit_code: int) -> None:
    """The gate passes (the candidate's own acceptance set) and no alarm fires, so CodeDeploy would promote it;
    but every user request was a client error, so nothing was learnt about the candidate on real traffic."""
    extra = ["--traffic", str(client_mistakes(tmp_path))] + (["--expect", expect] if expect else [])
    result, scenario = rehearse(tmp_path, CANDIDATES / "retrained", *extra)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert scenario["outcome"] == "inconclusive"
    assert "scored no rows" in scenario["reason"]
    window = scenario["deployment_window"]
    assert window["candidate_requests"] > 0
    assert window["candidate_client_errors"] == window["candidate_requests"]
    assert window["requests"] > window["candidate_requests"]  # the baseline's answers in the same window
    assert "inconclusive" in result.stdout


@pytest.mark.parametrize(("expect", "exit_code"), [(None, 1), ("blocked", 0), ("promoted", 1)])
def test_a_blocked_candidate_fails_the_command_unless_expected(
    tmp_path: Path, expect: str | None, exit_code: int
) -> None:
    """The candidate's folder names another model: it is rehearsed as the next version of the baseline's."""
    candidate = tmp_path / "iris-shuffled-v2"
    shutil.copytree(CANDIDATES / "shuffled", candidate)
    settings = json.loads((candidate / "modelrail.json").read_text())
    (candidate / "modelrail.json").write_text(json.dumps({**settings, "name": "iris-shuffled-v2"}))
    result, scenario = rehearse(tmp_path, candidate, *(["--expect", expect] if expect else []))
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "note: the candidate is named 'iris-shuffled-v2', the baseline 'iris'" in result.stderr
    assert scenario["outcome"] == "blocked"
    assert scenario["deployment_window"] is None  # it never received a user request


def test_expect_needs_the_users_own_rollout() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelrail", "rehearse", "--expect", "promoted"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--expect goes with --baseline and --candidate" in result.stdout + result.stderr
