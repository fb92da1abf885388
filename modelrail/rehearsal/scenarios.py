"""Rehearsal scenarios: one rollout each, from a baseline version to a candidate, under live traffic.

The default set, on the sample model and the production spec, shows the three ways a rollout ends: a good
version promoted, a version blocked by the acceptance gate, and a version that passes the gate but fails on
part of real traffic, rolled back by the canary's alarms; and what production's canary analysis does with a
version whose answers differ but whose errors do not, at the demo's traffic: it has too few captured canary rows
to judge, and the version is promoted, as it would be in AWS.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.local.environment import LocalCloud
from modelrail.local.gateway import LocalGateway
from spec.bundle import ModelBundle
from spec.environment import EnvironmentSpec

from .alarms import AlarmEvaluator
from .alias import WeightedAlias
from .canary import CanaryAnalysis
from .clock import RehearsalClock
from .controller import DeploymentController, describe
from .drift import DriftWatch
from .metrics import MetricStore
from .traffic import LoadGenerator, RequestMix
from .verdict import deployment_window, unjudged
from .view import RehearsalView

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ROOT / "models" / "iris-candidates"
DEFAULT_TIME_SCALE = 20.0  # production's 15-minute canary step in 45 s
WARM_UP_S = 30.0  # rehearsed seconds of baseline-only traffic before the deployment starts


@dataclass(frozen=True)
class Scenario:
    name: str
    baseline: Path
    candidate: Path
    expected: str | None = None  # the outcome the default set expects; None for the user's own rollout


def default_scenarios() -> list[Scenario]:
    baseline = ROOT / "models" / "iris"
    return [
        Scenario("good new version", baseline, CANDIDATES / "retrained", "promoted"),
        Scenario("fails acceptance", baseline, CANDIDATES / "shuffled", "blocked"),
        Scenario("fails on real traffic", baseline, CANDIDATES / "nan-tail", "rolled_back"),
        # Promoted: under production's 5% capture, the demo's traffic leaves the canary far fewer captured rows in
        # its step than the monitor needs before it publishes PredictionDivergence; AWS would promote it too.
        Scenario("predictions diverge", baseline, CANDIDATES / "skewed", "promoted"),
    ]


def run_scenario(
    scenario: Scenario,
    environment: EnvironmentSpec,
    cloud: LocalCloud,
    view: RehearsalView,
    *,
    time_scale: float = DEFAULT_TIME_SCALE,
    rate: float = 40.0,
    replay: list[dict[str, Any]] | None = None,
    stop: threading.Event | None = None,
    mistakes: float | None = None,
) -> dict[str, Any]:
    baseline_bundle = ModelBundle.load(scenario.baseline)
    candidate_bundle = ModelBundle.load(scenario.candidate)
    model = baseline_bundle.name
    if candidate_bundle.name != model:  # the next version of the baseline's model, whatever its folder says
        candidate_bundle = dataclasses.replace(candidate_bundle, name=model)
    function_name = f"modelrail-{environment.name}-{model}"

    # The rehearsed clock starts first: the workers' own clocks (data capture's record times) run on it too.
    clock = RehearsalClock(time_scale, epoch=cloud.new_timeline())
    monitoring = environment.monitoring
    stream = (
        cloud.start_capture_stream(f"modelrail-{environment.name}-capture-{clock.epoch:%Y%m%d%H%M}", clock.date)
        if monitoring.capture
        else None
    )
    capture: dict[str, Any] = (
        {"capture_stream": stream.name, "sample_rate": monitoring.sample_rate} if stream is not None else {}
    )
    deployed = {version: cloud.deploy(bundle) for bundle, version in ((baseline_bundle, "1"), (candidate_bundle, "2"))}
    # The stack being deployed carries the candidate's bundle: the drift monitor watches the model with the
    # candidate's baseline.json, and is not there at all when that bundle has none.
    monitored = cloud.upload_baseline(deployed["2"]) if stream is not None else None
    # Both execution environments cold-start at once, as two Lambda versions would.
    with ThreadPoolExecutor(max_workers=2) as pool:
        starting = [
            pool.submit(cloud.start_worker, deployed[version], version, clock=clock.anchor(), **capture)
            for version in ("1", "2")
        ]
        baseline, candidate = (future.result() for future in starting)
    store = MetricStore()
    alias = WeightedAlias(function_name, clock, store)
    alias.add_version(baseline)
    alias.add_version(candidate)
    alias.point_to(baseline.version)
    alarms = [
        AlarmEvaluator(definition, store, model, function_name, candidate.version)
        for definition in environment.alarm_definitions()
        if definition.stops_rollout
    ]
    canary = CanaryAnalysis(
        store=store,
        clock=clock,
        model=model,
        candidate=candidate.version,
        queries=[query for alarm in alarms for query in alarm.definition.metrics],
        schedule_minutes=monitoring.schedule_minutes,
        min_canary_rows=monitoring.min_canary_rows,
        start_monitor=(
            functools.partial(
                cloud.start_drift_monitor, [monitored], capture_bucket=stream.bucket, monitoring=monitoring
            )
            if stream is not None and monitored is not None
            else None
        ),
        cloudwatch=cloud.aws.client("cloudwatch"),
        off=(
            "monitoring.capture is off"
            if stream is None
            else f"{scenario.candidate.name} has no baseline.json, and the drift monitor watches only bundles with one"
        ),
    ).start()
    baseline_document = json.loads(baseline_bundle.baseline_path.read_text()) if baseline_bundle.baseline_path else None
    drift = DriftWatch(baseline_document)
    alias.observers.append(drift.observe)
    mix = RequestMix(baseline_bundle.acceptance_cases(), replay or (), mistakes=mistakes)
    gateway = LocalGateway({model: alias}).start()
    load = LoadGenerator(gateway.url, model, mix, rate=rate).start()
    view.begin(scenario.name, alias, alarms, clock, canary=canary, drift=drift)
    try:
        clock.sleep_until(clock.now() + WARM_UP_S, stop)
        controller = DeploymentController(
            model=model,
            alias=alias,
            baseline=baseline,
            candidate=candidate,
            cases=candidate_bundle.acceptance_cases(),
            criteria=candidate_bundle.settings.acceptance,
            policy=environment.rollout,
            alarms=alarms,
            clock=clock,
            decide=view.decision,
            stop=stop,
        )
        result = controller.run()
    finally:
        load.stop()
        canary.stop()
        view.end()
        gateway.stop()
        baseline.stop()
        candidate.stop()

    stats = alias.stats.get(candidate.version)
    first = stats.first_request_at if stats else None
    outcome: str = result.outcome  # or the rehearsal's own verdict, inconclusive
    reason = result.reason
    # CodeDeploy promotes when no alarm fired; the rehearsal says whether the candidate's own traffic was judged.
    unproven = unjudged(controller.requests, candidate.version, alarms, controller.evaluated_until)
    if outcome == "promoted" and unproven is not None:
        outcome, reason = "inconclusive", f"CodeDeploy would promote it untested: {unproven}"
    return {
        "name": scenario.name,
        "baseline": str(scenario.baseline),
        "candidate": str(scenario.candidate),
        "policy": {
            "environment": environment.name,
            "description": describe(environment.rollout),
            **environment.rollout.model_dump(exclude_none=True),
        },
        "outcome": outcome,
        "expected": scenario.expected,
        "as_expected": scenario.expected is None or outcome == scenario.expected,
        "reason": reason,
        "requests": {
            version: {"total": s.total, "errors": s.errors, "client_errors": s.client_errors}
            for version, s in sorted(alias.stats.items())
        },
        "candidate_served": stats.total if stats else 0,
        "candidate_share": round((stats.total if stats else 0) / max(1, sum(s.total for s in alias.stats.values())), 4),
        "candidate_failed": stats.errors if stats else 0,
        # From the candidate's first request to the decision: what all users saw, next to the candidate's own share.
        "deployment_window": deployment_window(controller.requests, candidate.version, result.decided_at),
        "decided_after_s": _since(first, result.decided_at),
        "alarms": [{"name": a.name, "final_state": a.state, "fired_at_s": _since(first, a.fired_at())} for a in alarms],
        "prediction_divergence": round(canary.latest, 4) if canary.latest is not None else None,
        "canary_analysis": canary.summary(),
        "drift": drift_summary(drift),
        "acceptance": result.verdict.to_dict() if result.verdict else None,
    }


def _since(first: float | None, moment: float | None) -> float | None:
    """Rehearsed seconds from the candidate's first user request to ``moment`` (None if either never came)."""
    return round(moment - first, 1) if first is not None and moment is not None else None


def drift_summary(drift: DriftWatch) -> dict[str, Any] | None:
    """The traffic's drift from the baseline bundle's baseline.json (all versions' answers)."""
    report = drift.report()
    if report is None:
        return None
    worst = report.worst("feature", 1)
    return {
        "feature_drift_max": report.to_dict()["feature_drift_max"],
        "worst_feature": worst[0].name if worst else None,
        "prediction_drift": report.to_dict()["prediction_drift"],
    }
