"""The layers of rollout defence in the rehearsal: replay stops a candidate that swaps labels before any user sees
it, and the monitor's paired canary analysis, on real local workers, catches the same candidate on the canary."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.acceptance.events import rest_proxy_event
from modelrail.local.environment import LocalCloud
from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.canary import CanaryAnalysis
from modelrail.rehearsal.lambda_api import ENDPOINT_VARIABLE, LocalLambdaApi
from spec.alarms import AlarmThresholds
from spec.bundle import ModelBundle
from spec.environment import MonitoringSettings
from tests.e2e.live_canary import live_canary

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "modelrail-test-iris"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        yield cloud


def test_the_monitor_compares_the_canary_with_the_old_version_on_its_own_captured_requests(cloud: LocalCloud) -> None:
    """Real inference workers capture through the stream; the real monitor, on its schedule, reads the alias's
    routing from the local Lambda API, invokes version 1 with version 2's captured requests, and publishes
    CanaryDisagreement, which reaches the canary-disagreement alarm's metrics."""
    monitoring = MonitoringSettings(sample_rate=1.0, schedule_minutes=1, paired_min_requests=10)
    live = live_canary(
        cloud,
        "models/iris-candidates/label-swap",
        monitoring,
        stream_name="modelrail-test-capture-paired",
        function=FUNCTION,
    )
    clock, stream, deployed, store, alias = live.clock, live.stream, live.deployed, live.store, live.alias
    api = LocalLambdaApi(alias).start()
    (disagreement,) = (d for d in AlarmThresholds().definitions() if d.name == "canary-disagreement")
    monitored = cloud.upload_baseline(deployed["2"])
    assert monitored is not None
    canary = CanaryAnalysis(
        store=store,
        clock=clock,
        model="iris",
        candidate="2",
        queries=list(disagreement.metrics),
        schedule_minutes=monitoring.schedule_minutes,
        min_canary_rows=monitoring.min_canary_rows,
        paired_min=monitoring.paired_min_requests,
        start_monitor=lambda: cloud.start_drift_monitor(
            [{**monitored, "function_name": FUNCTION}],
            capture_bucket=stream.bucket,
            monitoring=monitoring,
            endpoints={ENDPOINT_VARIABLE: api.url},
        ),
        cloudwatch=cloud.aws.client("cloudwatch"),
    ).start()
    cases = ModelBundle.load(ROOT / "models/iris").acceptance_cases()
    served_by_alias = 0
    try:
        while canary.disagreement is None and len(canary.runs) < 6:
            case = cases[served_by_alias % len(cases)]
            body = json.dumps({"inputs": case.inputs}).encode()
            alias.invoke(rest_proxy_event("POST", "/v2/models/iris/infer", {"content-type": "application/json"}, body))
            served_by_alias += 1
    finally:
        canary.stop()
        api.stop()
        live.stop()

    assert all(run.error is None for run in canary.runs), canary.runs
    assert canary.disagreement is not None, canary.runs
    assert canary.disagreement > disagreement.threshold  # versicolor and virginica the other way round
    paired = canary.paired
    assert paired is not None
    assert (paired["old"], paired["new"]) == ("1", "2")
    assert paired["compared"] >= monitoring.paired_min_requests
    assert paired["disagreement_percent"] == round(canary.disagreement, 2)
    # Only the version being replaced was invoked, directly (never through the alias: not user traffic).
    assert set(api.invocations) == {"1"}
    assert sum(s.total for s in alias.stats.values()) == served_by_alias
    # The datapoint reached the rehearsal's metrics for the alarm, on the candidate's own version.
    dims = {"ModelName": "iris", "ModelVersion": "2"}
    assert store.values("modelrail", "CanaryDisagreement", dims, 0, float("inf"))
    # And the alarm reads it: the canary-disagreement alarm went to ALARM when the datapoint's period ended.
    evaluator = AlarmEvaluator(disagreement, store, "iris", FUNCTION, "2")
    evaluator.evaluate(clock.now() + disagreement.period_seconds)
    assert evaluator.fired_at() is not None, evaluator.history


def test_a_label_swapping_candidate_is_blocked_by_replay_before_any_user_request(tmp_path: Path) -> None:
    """Its own acceptance set passes; the baseline's captured requests, replayed, do not agree."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelrail",
            "rehearse",
            "--baseline",
            "models/iris",
            "--candidate",
            "models/iris-candidates/label-swap",
            "--time-scale",
            "60",
            "--report",
            str(report),
            "--expect",
            "blocked",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [scenario] = json.loads(report.read_text())["scenarios"]
    assert scenario["outcome"] == "blocked"
    assert scenario["decided_by"]["layer"] == "replay"
    assert "replay agreement" in scenario["decided_by"]["criteria"]
    acceptance = {c["name"]: c for c in scenario["acceptance"]["criteria"]}
    assert acceptance["acceptance set"]["passed"]  # what its own set says
    assert not acceptance["replay agreement"]["passed"]
    assert scenario["candidate_served"] == 0
    assert scenario["deployment_window"] is None  # not one user request
    assert "decided by: replay (failed: replay agreement" in result.stdout
