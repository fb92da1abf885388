"""The rehearsal's deployment controller on real workers: CodeDeploy's decisions, with time compressed."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from functions.acceptance.events import rest_proxy_event
from functions.acceptance.replay import answered_records
from functions.monitor.capture import CaptureReader, parse_records
from modelrail.local.environment import LocalCloud
from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.alias import WeightedAlias
from modelrail.rehearsal.canary import CanaryAnalysis
from modelrail.rehearsal.clock import RehearsalClock
from modelrail.rehearsal.controller import DeploymentController, RolloutResult
from modelrail.rehearsal.metrics import Datapoint, MetricStore
from spec.alarms import AlarmThresholds
from spec.bundle import ModelBundle
from spec.capture import BUFFER_INTERVAL_S
from spec.environment import MonitoringSettings
from spec.rollout import RolloutPolicy
from tests import builders
from tests.e2e.live_canary import live_canary

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


class RecordingClock(RehearsalClock):
    """The rehearsal's clock, noting each wait asked of it: (rehearsed target, the event that may interrupt it)."""

    def __init__(self, scale: float) -> None:
        super().__init__(scale)
        self.waits: list[tuple[float, threading.Event | None]] = []

    def sleep_until(self, rehearsed: float, interrupt: threading.Event | None = None, step: float = 0.05) -> bool:
        self.waits.append((rehearsed, interrupt))
        return super().sleep_until(rehearsed, interrupt, step)


class SteppedClock(RecordingClock):
    """Rehearsed time that moves only when waited for, and then at once: every step lands on its exact time, and a
    wait that cannot move the clock (a loop polling without waiting) fails the test instead of spinning."""

    def __init__(self) -> None:
        super().__init__(1)
        self._now = 0.0
        self.stalled = 0

    def now(self) -> float:
        return self._now

    def sleep_until(self, rehearsed: float, interrupt: threading.Event | None = None, step: float = 0.05) -> bool:
        self.waits.append((rehearsed, interrupt))
        if interrupt is not None and interrupt.is_set():
            return False
        if rehearsed <= self._now:
            self.stalled += 1
            assert self.stalled < 10, f"{self.stalled} waits for a time already past ({rehearsed} s): a busy loop"
        self._now = max(self._now, rehearsed)
        return True


class Rollout:
    """A controller over two real workers, with a record of its decisions and a hand on the metrics."""

    def __init__(
        self,
        cloud: LocalCloud,
        tmp_path: Path,
        policy: RolloutPolicy,
        *,
        good_candidate: bool = True,
        alias: type[WeightedAlias] = WeightedAlias,
        clock: RecordingClock | None = None,
        latency_budget_ms: float | None = None,
        replayed_requests: int = 0,
    ):
        baseline = bundle(tmp_path / "baseline", 2.0)
        candidate = bundle(tmp_path / "candidate", 2.0 if good_candidate else 3.0)
        self.old = cloud.start_worker(cloud.deploy(baseline), "1")
        self.new = cloud.start_worker(cloud.deploy(candidate), "2")
        self.clock = clock or RecordingClock(600)  # ten rehearsed minutes per second
        self.store = MetricStore()
        self.alias = alias(FUNCTION, self.clock, self.store)
        for worker in (self.old, self.new):
            self.alias.add_version(worker)
        self.alias.point_to("1")
        thresholds = AlarmThresholds(period_seconds=10, evaluation_periods=1, datapoints_to_alarm=1)
        self.alarms = [AlarmEvaluator(d, self.store, "root", FUNCTION, "2") for d in thresholds.definitions()]
        self.decisions: list[str] = []
        self.shifted_to: list[dict[str, float]] = []  # the alias's weights as each shift is announced
        self.decided_at: list[float] = []  # rehearsed time of each decision
        self.stop = threading.Event()
        criteria = candidate.settings.acceptance
        if latency_budget_ms is not None:
            criteria = criteria.model_copy(update={"latency_budget_ms": latency_budget_ms})
        # The old version's answers to requests it served, as its data capture would have recorded them.
        inputs = [[{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [i, i * i]}] for i in range(1, 25)]
        captured = answered_records("root", lambda event: self.old.invoke(event).response, inputs, version="1")
        self.controller = DeploymentController(
            model="root",
            alias=self.alias,
            baseline=self.old,
            candidate=self.new,
            cases=candidate.acceptance_cases(),
            criteria=criteria,
            policy=policy,
            alarms=self.alarms,
            clock=self.clock,
            decide=self._decided,
            stop=self.stop,
            replay=(lambda: captured[:replayed_requests]) if replayed_requests else None,
        )
        self.after_decision: Callable[[str], None] = lambda message: None  # runs in the controller's thread

    def _decided(self, at: float, message: str) -> None:
        self.decisions.append(message)
        self.decided_at.append(at)
        if message.startswith("alias live:"):
            self.shifted_to.append(self.alias.weights())
        self.after_decision(message)

    def fail_after(self, decision: str) -> None:
        """Once ``decision`` has been taken, the new version starts failing half its requests."""

        def inject() -> None:
            while not any(decision in d for d in self.decisions):
                if self.stop.wait(0.01):
                    return
            self.fail_now()

        threading.Thread(target=inject, daemon=True).start()

    def fail_now(self) -> None:
        """Half of ten requests to the new version fail, now."""
        dims = frozenset({("ModelName", "root"), ("ModelVersion", "2")})
        now = self.clock.now()
        self.store.add(
            [Datapoint(now, "modelrail", "Requests", dims, 1.0) for _ in range(10)]
            + [Datapoint(now, "modelrail", "ModelErrors", dims, float(i % 2)) for i in range(10)]
        )

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
    rollout = Rollout(cloud, tmp_path, LINEAR, clock=SteppedClock())
    result = rollout.run()
    assert result.outcome == "promoted"
    shifts = [d for d in rollout.decisions if d.startswith("alias live:")]
    assert shifts == [f"alias live: {100 - p}% version 1, {p}% version 2" for p in (25, 50, 75, 100)]
    # What the alias routes, not only what the controller says it routes: a canary that shifted everything at once
    # would pass the message check.
    assert rollout.shifted_to == [{"1": 1 - p / 100, "2": p / 100} for p in (25, 50, 75)] + [{"2": 1.0}]
    assert rollout.decisions[-1].startswith("post-traffic hook passed")
    assert rollout.alias.weights() == {"2": 1.0}
    # The result the rehearsal's report prints: why, when and on which verdict it was decided.
    assert result.reason == "all hooks passed and no alarm fired"
    assert result.verdict is not None
    assert result.verdict.passed
    assert result.decided_at >= rollout.decided_at[-1]
    gate = result.verdict.criteria[-1].measured  # no capture here: nothing replayed, the last row is shown
    assert f"pre-traffic hook passed ({len(rollout.controller.cases)} acceptance cases, {gate})" in rollout.decisions
    # Each step when the policy says, counted from the gate's pass (CodeDeploy's Linear25PercentEvery2Minutes
    # shifts at 0, 2, 4 and 6 minutes): on the stepped clock, to the second.
    passed_at = rollout.decided_at[next(i for i, d in enumerate(rollout.decisions) if d.startswith("pre-traffic"))]
    shifted_at = [at for at, d in zip(rollout.decided_at, rollout.decisions, strict=True) if d.startswith("alias live")]
    assert shifted_at == [passed_at + minute * 60 for minute, _ in LINEAR.schedule()]
    # The alarms were watched to the end of the full shift's check, the time the rehearsal's verdict reads.
    assert rollout.controller.evaluated_until == shifted_at[-1] == result.decided_at
    # Between steps the alarms are evaluated at least every 5 rehearsed seconds, each wait moving time on.
    targets = [passed_at] + [target for target, _ in rollout.clock.waits]
    assert all(0 < b - a <= 5 for a, b in itertools.pairwise(targets)), targets
    assert targets[-1] == shifted_at[-1]


def test_hook_failure_blocks_with_no_traffic(cloud: LocalCloud, tmp_path: Path) -> None:
    # Wrong answers, and slower than a 1 us budget: the reason names both failing criteria.
    rollout = Rollout(cloud, tmp_path, CANARY, good_candidate=False, latency_budget_ms=0.001)
    result = rollout.run()
    assert result.outcome == "blocked"
    assert result.verdict is not None
    failing = result.verdict.failing()
    assert len(failing) == 2
    assert failing[0] == "acceptance set"
    assert result.reason == f"pre-traffic hook failed: {failing[0]}, {failing[1]}"
    assert result.decided_at >= rollout.decided_at[-1]
    assert rollout.alias.weights() == {"1": 1.0}
    assert "2" not in rollout.alias.stats
    assert not any(d.startswith("alias live:") for d in rollout.decisions)


def test_alarm_during_canary_rolls_back(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, CANARY, replayed_requests=24)
    rollout.fail_after("10% version 2")
    result = rollout.run()
    assert result.outcome == "rolled_back"
    # The reason is the alarm's own, from its latest transition: the one into ALARM, with the values it saw.
    [alarm] = [a for a in rollout.alarms if a.state == "ALARM"]
    assert [t.state for t in alarm.history][-2:] == ["OK", "ALARM"]
    assert result.reason == f"alarm model-error-rate in ALARM: {alarm.history[-1].reason}"
    assert result.verdict is not None
    assert result.verdict.passed
    # With captured requests replayed, the gate's line shows the replay's figure, not the table's last row.
    replayed = next(c.measured for c in result.verdict.criteria if c.name == "replay agreement")
    assert f"pre-traffic hook passed (1 acceptance cases, replay: {replayed})" in rollout.decisions
    assert replayed != result.verdict.criteria[-1].measured
    assert rollout.alias.weights() == {"1": 1.0}
    assert not any("100% version 2" in d for d in rollout.decisions)


def test_a_failure_in_the_first_period_rolls_back_as_that_period_ends(cloud: LocalCloud, tmp_path: Path) -> None:
    """Every rollout alarm takes missing data as not breaching, so its history before a rollback is [OK, ALARM] or,
    when the first period it evaluates already breaches, [ALARM] alone: the reason is still the latest one's."""
    rollout = Rollout(cloud, tmp_path, CANARY, clock=SteppedClock())
    rollout.after_decision = lambda message: rollout.fail_now() if "10% version 2" in message else None
    result = rollout.run()
    assert result.outcome == "rolled_back"
    [alarm] = [a for a in rollout.alarms if a.state == "ALARM"]
    assert [t.state for t in alarm.history] == ["ALARM"]
    assert result.reason == f"alarm model-error-rate in ALARM: {alarm.history[-1].reason}"
    period = alarm.definition.period_seconds
    assert result.decided_at == period  # the first period [0, 10 s) is judged the moment it ends
    assert rollout.alias.weights() == {"1": 1.0}


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
    # Rolled back: the alias's routing no longer names the new version at all, as after CodeDeploy's rollback.
    assert rollout.alias.weights() == {"1": 1.0}
    assert rollout.decisions[-1].endswith("rolled back: alias live is 100% version 1")
    assert not any("100% version 2" in d for d in rollout.decisions)
    # Every wait of the controller ends at the stop, not at the end of its poll: seen at once at any time scale.
    assert rollout.clock.waits
    assert all(interrupt is rollout.stop for _, interrupt in rollout.clock.waits)


class OneInTenStaysOld(WeightedAlias):
    """An alias whose full shift left one request in ten on the old version (a routing config not cleared, or
    changed by someone else mid-deployment): the post-traffic check must see it."""

    after_full_shift = 0

    def choose(self) -> str:
        version = super().choose()
        if version == "2" and self.weights() == {"2": 1.0}:
            self.after_full_shift += 1
            if self.after_full_shift % 10 == 0:
                return "1"
        return version


def test_a_partly_shifted_alias_fails_the_post_traffic_check_and_rolls_back(cloud: LocalCloud, tmp_path: Path) -> None:
    rollout = Rollout(cloud, tmp_path, CANARY, alias=OneInTenStaysOld)
    result = rollout.run()
    assert result.outcome == "rolled_back"
    # The hook's ten probes: nine answered by the new version, the tenth by the old one.
    assert result.reason == f"post-traffic hook failed: the alias answered with versions {['2'] * 9 + ['1']}"
    assert result.verdict is not None
    assert result.verdict.passed
    assert rollout.alias.weights() == {"1": 1.0}
    assert not any(d.startswith("post-traffic hook passed") for d in rollout.decisions)


def test_an_alarm_in_the_full_shifts_period_rolls_back_before_the_post_traffic_hook(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    """The new version fails as it takes all the traffic: the alarm check after the last shift (CodeDeploy watches
    its alarms until the deployment ends) sees the period, though no step of the schedule is left to watch."""
    rollout = Rollout(cloud, tmp_path, CANARY)
    period = rollout.alarms[0].definition.period_seconds

    def fail_on_full_shift(message: str) -> None:
        if "100% version 2" in message:
            rollout.fail_now()
            # The failing period ends after the shift: only the check that follows the last shift can see it.
            rollout.clock.sleep_until((rollout.clock.now() // period + 1) * period)

    rollout.after_decision = fail_on_full_shift
    result = rollout.run()
    assert result.outcome == "rolled_back"
    assert result.reason.startswith("alarm model-error-rate in ALARM")
    assert result.verdict is not None  # the gate's verdict stays in the result the report prints
    assert result.verdict.passed
    assert any("100% version 2" in d for d in rollout.decisions)
    assert not any(d.startswith("post-traffic hook") for d in rollout.decisions)
    assert rollout.alias.weights() == {"1": 1.0}


def test_own_bundles_with_a_traffic_file_replayed_by_the_gate(tmp_path: Path) -> None:
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
            "--expect",  # a block is the point here; without this the command exits 1
            "blocked",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [scenario] = json.loads(report.read_text())["scenarios"]
    # One request in three has a 6.7 cm petal. The baseline served the same traffic with capture on before the
    # deployment: the gate replays those requests, the candidate answers NaN to a third of them, and no user
    # request ever reaches it.
    assert scenario["outcome"] == "blocked"
    assert scenario["decided_by"]["layer"] == "replay"
    assert "replay non-finite" in scenario["decided_by"]["criteria"]
    assert scenario["candidate_served"] == 0
    assert scenario["requests"]["1"]["total"] > 0


# --- metrics produced as in AWS: capture through the stream, canary analysis by the scheduled monitor -----------

# Firehose names an object <evaluated prefix><stream>-<stream version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><ext>, and times
# its prefix's !{timestamp:...} by the oldest record in it (Amazon Data Firehose Developer Guide, "Configure Amazon
# S3 object name format" and "Custom Prefixes for Amazon S3 Objects").
DEPLOYED_KEY = re.compile(
    r"^capture/model=(?P<model>[^/]+)/version=(?P<version>[^/]+)/hour=(?P<hour>\d{4}-\d\d-\d\d-\d\d)/"
    r"(?P<stream>[a-z0-9-]+)-1-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f-]{36}\.gz$"
)


def capture_record(model: str, version: str, n: int) -> bytes:
    return json.dumps({"model": model, "version": version, "time": "2030-01-01T12:00:00Z", "n": n}).encode() + b"\n"


def test_capture_stream_buffers_for_the_interval_then_writes_the_deployed_layout(cloud: LocalCloud) -> None:
    moment = [datetime(2030, 1, 1, 12, 59, 30, tzinfo=UTC)]
    stream = cloud.start_capture_stream("modelrail-test-capture-layout", lambda: moment[0])
    firehose = cloud.aws.client("firehose")
    records = [capture_record("iris", "1", 0), capture_record("iris", "2", 1), capture_record("iris", "1", 2)]
    firehose.put_record_batch(DeliveryStreamName=stream.name, Records=[{"Data": r} for r in records])
    moment[0] += timedelta(seconds=BUFFER_INTERVAL_S - 1)
    firehose.put_record_batch(DeliveryStreamName=stream.name, Records=[{"Data": capture_record("iris", "1", 3)}])

    stream.deliver()
    assert stream.delivered == []  # nothing before the buffering interval has passed
    moment[0] += timedelta(seconds=1)  # past the hour too: the prefix keeps the oldest record's hour
    stream.deliver()  # (or its own delivery thread did, at most a poll later)

    s3 = cloud.aws.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=stream.bucket)["Contents"])
    assert sorted(stream.delivered) == keys
    assert len(keys) == 2
    by_version = {}
    for key in keys:
        match = DEPLOYED_KEY.match(key)
        assert match, key
        assert (match["model"], match["hour"], match["stream"]) == ("iris", "2030-01-01-12", stream.name)
        by_version[match["version"]] = key
    # What the monitor reads back is exactly what the function sent, per version, in arrival order.
    reader = CaptureReader(s3, stream.bucket)
    assert reader.versions("iris") == ["1", "2"]
    body = s3.get_object(Bucket=stream.bucket, Key=by_version["1"])["Body"].read()
    assert [r["n"] for r in parse_records(body)] == [0, 2, 3]


def test_canary_analysis_is_the_monitor_on_its_schedule_over_captured_records(cloud: LocalCloud) -> None:
    """The real inference workers capture through the stream; the real monitor, on its schedule, publishes the
    PredictionDivergence that reaches the alarm: once per run, stamped at the run's rehearsed time."""
    monitoring = MonitoringSettings(sample_rate=1.0, schedule_minutes=1, min_canary_rows=20)
    live = live_canary(
        cloud,
        "models/iris-candidates/skewed",
        monitoring,
        stream_name="modelrail-test-capture-canary",
        function=FUNCTION,
    )
    clock, stream, deployed, store, alias = live.clock, live.stream, live.deployed, live.store, live.alias
    (divergence,) = (d for d in AlarmThresholds().definitions() if d.name == "prediction-divergence")
    monitored = cloud.upload_baseline(deployed["2"])
    assert monitored is not None
    canary = CanaryAnalysis(
        store=store,
        clock=clock,
        model="iris",
        candidate="2",
        queries=list(divergence.metrics),
        schedule_minutes=monitoring.schedule_minutes,
        min_canary_rows=monitoring.min_canary_rows,
        start_monitor=lambda: cloud.start_drift_monitor(
            [monitored], capture_bucket=stream.bucket, monitoring=monitoring
        ),
        cloudwatch=cloud.aws.client("cloudwatch"),
    ).start()
    cases = ModelBundle.load(ROOT / "models/iris").acceptance_cases()
    try:
        while len(canary.runs) < 4:
            case = cases[sum(s.total for s in alias.stats.values()) % len(cases)]
            body = json.dumps({"inputs": case.inputs}).encode()
            alias.invoke(rest_proxy_event("POST", "/v2/models/iris/infer", {"content-type": "application/json"}, body))
    finally:
        canary.stop()
        live.stop()

    # The schedule, in rehearsed time: a run each minute from the rule's creation, never more often.
    assert [run.time for run in canary.runs][:4] == [60.0, 120.0, 180.0, 240.0], canary.runs
    assert all(run.error is None for run in canary.runs), canary.runs
    dims = {"ModelName": "iris", "ModelVersion": "2"}
    points = store.values(divergence.metrics[0].namespace, "PredictionDivergence", dims, 0, float("inf"))
    published = [run for run in canary.runs if "PredictionDivergence" in run.published]
    assert points
    assert len(points) == len(published)
    namespace = divergence.metrics[0].namespace
    for run in published:  # each stamped at its run's rehearsed time
        assert len(store.values(namespace, "PredictionDivergence", dims, run.time, run.time + 1)) == 1
    # Published only once the canary's captured rows reached MIN_CANARY_ROWS, and far above the threshold.
    assert all(run.rows.get("2", 0) >= monitoring.min_canary_rows for run in published)
    assert min(points) > divergence.threshold
    # And the prediction-divergence alarm reads them: ALARM once the first published run's period has ended.
    evaluator = AlarmEvaluator(divergence, store, "iris", FUNCTION, "2")
    assert evaluator.evaluate(published[0].time + divergence.period_seconds) == "ALARM", evaluator.last_values
    # The captured records are in the deployed layout, stamped in rehearsed time (the monitor's window).
    s3 = cloud.aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stream.bucket)["Contents"]]
    assert keys
    assert all(DEPLOYED_KEY.match(k) for k in keys)
    record = next(parse_records(s3.get_object(Bucket=stream.bucket, Key=keys[0])["Body"].read()))
    assert clock.epoch <= datetime.fromisoformat(record["time"]) <= clock.date()
