"""The rehearsal's deployment controller on real workers: CodeDeploy's decisions, with time compressed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.local.environment import LocalCloud
from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.alias import WeightedAlias
from modelrail.rehearsal.clock import RehearsalClock
from modelrail.rehearsal.controller import DeploymentController, RolloutResult
from modelrail.rehearsal.metrics import Datapoint, MetricStore
from spec.alarms import AlarmThresholds
from spec.bundle import ModelBundle
from spec.rollout import RolloutPolicy
from tests import builders

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "modelrail-test-root"


def bundle(folder: Path, expected_root_of_four: float) -> ModelBundle:
    folder.mkdir(parents=True)
    builders.square_root(folder / "model.onnx")
    case = {
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [4.0, 16.0]}],
        "expected": {"y": [expected_root_of_four, 4.0]},
    }
    (folder / "acceptance.jsonl").write_text(json.dumps(case) + "\n")
    (folder / "modelrail.json").write_text(json.dumps({"name": "root", "acceptance": {"probe_requests": 5}}))
    return ModelBundle.load(folder)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        yield cloud


class Rollout:
    """A controller over two real workers, with a record of its decisions and a hand on the metrics."""

    def __init__(self, cloud: LocalCloud, tmp_path: Path, policy: RolloutPolicy, *, good_candidate: bool = True):
        baseline = bundle(tmp_path / "baseline", 2.0)
        candidate = bundle(tmp_path / "candidate", 2.0 if good_candidate else 3.0)
        self.old = cloud.start_worker(cloud.deploy(baseline), "1")
        self.new = cloud.start_worker(cloud.deploy(candidate), "2")
        self.clock = RehearsalClock(600)  # ten rehearsed minutes per second
        self.store = MetricStore()
        self.alias = WeightedAlias(FUNCTION, self.clock, self.store)
        for worker in (self.old, self.new):
            self.alias.add_version(worker)
        self.alias.point_to("1")
        thresholds = AlarmThresholds(period_seconds=10, evaluation_periods=1, datapoints_to_alarm=1)
        self.alarms = [AlarmEvaluator(d, self.store, "root", FUNCTION, "2") for d in thresholds.definitions()]
        self.decisions: list[str] = []
        self.stop = threading.Event()
        self.controller = DeploymentController(
            model="root",
            alias=self.alias,
            baseline=self.old,
            candidate=self.new,
            cases=candidate.acceptance_cases(),
            criteria=candidate.settings.acceptance,
            policy=policy,
            alarms=self.alarms,
            clock=self.clock,
            decide=lambda _, message: self.decisions.append(message),
            stop=self.stop,
        )

    def fail_after(self, decision: str) -> None:
        """Once ``decision`` has been taken, the new version starts failing half its requests."""

        def inject() -> None:
            while not any(decision in d for d in self.decisions):
                if self.stop.wait(0.01):
                    return
            dims = frozenset({("ModelName", "root"), ("ModelVersion", "2")})
            now = self.clock.now()
            self.store.add(
                [Datapoint(now, "modelrail", "Requests", dims, 1.0) for _ in range(10)]
                + [Datapoint(now, "modelrail", "ModelErrors", dims, float(i % 2)) for i in range(10)]
            )

        threading.Thread(target=inject, daemon=True).start()

    def run(self) -> RolloutResult:
        try:
            return self.controller.run()
        finally:
            self.stop.set()
            self.old.stop()
            self.new.stop()


CANARY = RolloutPolicy(kind="canary", percentage=10, interval_minutes=5)
LINEAR = RolloutPolicy(kind="linear", percentage=25, interval_minutes=2)


def test_success_promotes_after_every_step_and_the_post_traffic_hook(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, LINEAR)
    result = rollout.run()
    assert result.outcome == "promoted"
    shifts = [d for d in rollout.decisions if d.startswith("alias live:")]
    assert shifts == [f"alias live: {100 - p}% version 1, {p}% version 2" for p in (25, 50, 75, 100)]
    assert rollout.decisions[-1].startswith("post-traffic hook passed")
    assert rollout.alias.weights() == {"2": 1.0}


def test_hook_failure_blocks_with_no_traffic(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, CANARY, good_candidate=False)
    result = rollout.run()
    assert result.outcome == "blocked"
    assert result.reason == "pre-traffic hook failed: acceptance set"
    assert rollout.alias.weights() == {"1": 1.0}
    assert "2" not in rollout.alias.stats
    assert not any(d.startswith("alias live:") for d in rollout.decisions)


def test_alarm_during_canary_rolls_back(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, CANARY)
    rollout.fail_after("10% version 2")
    result = rollout.run()
    assert result.outcome == "rolled_back"
    assert result.reason.startswith("alarm model-error-rate in ALARM")
    assert rollout.alias.weights() == {"1": 1.0}
    assert not any("100% version 2" in d for d in rollout.decisions)


def test_alarm_during_linear_steps_rolls_back_before_the_next_step(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, LINEAR)
    rollout.fail_after("50% version 2")
    result = rollout.run()
    assert result.outcome == "rolled_back"
    assert "model-error-rate" in result.reason
    shifts = [d for d in rollout.decisions if d.startswith("alias live:")]
    assert shifts == ["alias live: 75% version 1, 25% version 2", "alias live: 50% version 1, 50% version 2"]
    assert rollout.alias.weights() == {"1": 1.0}


def test_a_stop_rolls_back(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, CANARY)

    def stop_after_first_shift() -> None:
        while not any(d.startswith("alias live:") for d in rollout.decisions):
            threading.Event().wait(0.01)
        rollout.stop.set()

    threading.Thread(target=stop_after_first_shift, daemon=True).start()
    result = rollout.run()
    assert result.outcome == "rolled_back"
    assert result.reason == "deployment stopped by the operator"


def test_own_bundles_with_a_traffic_file(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [7.7, 2.8, 6.7, 2.0]]
    traffic.write_text(
        "\n".join(
            json.dumps({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": r}]})
            for r in rows
        )
    )
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
            "models/iris-candidates/nan-tail",
            "--traffic",
            str(traffic),
            "--time-scale",
            "20",
            "--rate",
            "60",
            "--report",
            str(report),
            "--expect",  # a rollback is the point here; without this the command exits 1
            "rolled_back",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [scenario] = json.loads(report.read_text())["scenarios"]
    # One request in three has a 6.7 cm petal: the canary's alarm catches it and the alias goes back.
    assert scenario["outcome"] == "rolled_back"
    assert "non-finite-rate" in scenario["reason"]
    assert scenario["candidate_failed"] > 0
    assert scenario["requests"]["1"]["total"] > scenario["candidate_served"]
