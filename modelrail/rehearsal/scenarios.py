"""Rehearsal scenarios: one rollout each, from a baseline version to a candidate, under live traffic.

Before each deployment the baseline serves with data capture on (the environment's sample rate), at
``WARM_UP_RATE_FACTOR`` times the rate, until the capture bucket holds twice the captured requests the gate needs
to replay (``acceptance.replay.min_requests``), or for ``MAX_WARM_UP_S`` rehearsed seconds at most.

The default set, on the sample model and the production spec, shows the three layers of rollout defence and
which one decides: a candidate with wrong answers stopped by its acceptance set; a label-swapping candidate (its
own acceptance set passes) and one that answers NaN on long petals both stopped by replay, with no user request
served; the same NaN candidate when the capture window never saw long petals (they arrive with the deployment),
which only the canary's alarms catch; and a good retrain promoted, its agreement with the live version shown.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.acceptance.replay import Unavailable, read_capture
from modelrail.load.capacity import REQUESTS_PER_CONCURRENCY
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
from .lambda_api import ENDPOINT_VARIABLE, LocalLambdaApi
from .metrics import MetricStore
from .traffic import CLIENTS, LoadGenerator, RequestMix
from .verdict import deciding_layer, deployment_window, unjudged
from .view import RehearsalView

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ROOT / "models" / "iris-candidates"
DEFAULT_TIME_SCALE = 20.0  # production's 15-minute canary step in 45 s
WARM_UP_S = 30.0  # rehearsed seconds of baseline-only traffic before the deployment starts, at least
MAX_WARM_UP_S = 1800.0  # and at most, whatever was captured (a traffic file of client mistakes captures nothing)
WARM_UP_POLL_S = 15.0
WARM_UP_RATE_FACTOR = 5.0
"""The warm-up's rate, times the scenario's: at production's 5% capture and the demo's rate, 40 captured requests
take about 400 rehearsed seconds plus Firehose's minute of buffering; at 5 times, about 2 minutes."""


@dataclass(frozen=True)
class Scenario:
    name: str
    baseline: Path
    candidate: Path
    expected: str | None = None  # the outcome the default set expects; None for the user's own rollout
    layer: str | None = None  # the layer expected to decide (verdict.deciding_layer); None: not checked
    unseen_in_warm_up: bool = False
    """The warm-up's traffic is the acceptance set's inputs as they are (no jitter), the deployment's the usual
    variety: what the candidate fails on first arrives with the deployment, and the capture never held it."""


def default_scenarios() -> list[Scenario]:
    baseline = ROOT / "models" / "iris"
    return [
        Scenario("wrong answers", baseline, CANDIDATES / "shuffled", "blocked", "acceptance set"),
        # Its own acceptance set passes and its prediction mix barely moves; it answers most flowers otherwise.
        Scenario("swaps labels", baseline, CANDIDATES / "label-swap", "blocked", "replay"),
        Scenario("NaN on long petals, in the capture", baseline, CANDIDATES / "nan-tail", "blocked", "replay"),
        Scenario(
            "NaN on long petals, new with the deploy",
            baseline,
            CANDIDATES / "nan-tail",
            "rolled_back",
            "canary alarm",
            unseen_in_warm_up=True,
        ),
        Scenario("good retrain", baseline, CANDIDATES / "retrained", "promoted", None),
    ]


def throttle_warning(environment: EnvironmentSpec, rate: float) -> str | None:
    """Why the rehearsal's own traffic will be throttled by the function's reserved concurrency, if it will: Lambda
    allows 10 x concurrency invocations per second (modelrail.load.capacity's rule), and the alias counts every
    request in flight, so fewer than CLIENTS reserved means concurrency throttles too."""
    reserved = environment.function.reserved_concurrency
    if reserved is None:
        return None
    setting = f"environments.{environment.name}.function.reserved_concurrency {reserved}"
    warm_up = rate * WARM_UP_RATE_FACTOR
    allowed = REQUESTS_PER_CONCURRENCY * reserved
    reasons = []
    if warm_up > allowed:
        reasons.append(
            f"allows at most {allowed} invocations/s (Lambda's limit: 10 x concurrency); the rehearsal sends "
            f"{rate:g}/s ({warm_up:g}/s in the warm-up)"
        )
    if reserved < CLIENTS:
        reasons.append(f"is below the rehearsal's {CLIENTS} concurrent clients")
    if not reasons:
        return None
    return f"{setting} {'; and '.join(reasons)}: expect throttles (HTTP 500 to clients, the throttle-rate alarm)"


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
    started = time.monotonic()
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
    if monitored is not None:  # the paired canary analysis reads its alias and invokes its versions
        monitored = {**monitored, "function_name": function_name}
    # Both execution environments cold-start at once, as two Lambda versions would, each stopping an invocation at
    # the environment's function timeout, as Lambda does.
    timeout = environment.function.timeout_seconds
    with ThreadPoolExecutor(max_workers=2) as pool:
        starting = [
            pool.submit(
                cloud.start_worker, deployed[version], version, clock=clock.anchor(), timeout_seconds=timeout, **capture
            )
            for version in ("1", "2")
        ]
        baseline, candidate = (future.result() for future in starting)
    store = MetricStore()
    # The function's reserved concurrency caps the alias's concurrent and per-second invocations, as in Lambda.
    alias = WeightedAlias(function_name, clock, store, reserved_concurrency=environment.function.reserved_concurrency)
    alias.add_version(baseline)
    alias.add_version(candidate)
    alias.point_to(baseline.version)
    alarms = [
        AlarmEvaluator(definition, store, model, function_name, candidate.version)
        for definition in environment.alarm_definitions()
        if definition.stops_rollout
    ]
    signals = [d for d in environment.alarm_definitions() if not d.stops_rollout]  # prediction-divergence: shown
    lambda_api = LocalLambdaApi(alias).start()
    canary = CanaryAnalysis(
        store=store,
        clock=clock,
        model=model,
        candidate=candidate.version,
        queries=[q for d in (*(a.definition for a in alarms), *signals) for q in d.metrics],
        schedule_minutes=monitoring.schedule_minutes,
        min_canary_rows=monitoring.min_canary_rows,
        paired_min=monitoring.paired_min_requests,
        start_monitor=(
            functools.partial(
                cloud.start_drift_monitor,
                [monitored],
                capture_bucket=stream.bucket,
                monitoring=monitoring,
                endpoints={ENDPOINT_VARIABLE: lambda_api.url},
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
    # Unseen in the warm-up: the acceptance set's own inputs, as they are (not the traffic file's either).
    warm_up_mix = (
        RequestMix(baseline_bundle.acceptance_cases(), jitter=0.0, seed=2) if scenario.unseen_in_warm_up else mix
    )
    gateway = LocalGateway({model: alias}).start()
    load = LoadGenerator(gateway.url, model, warm_up_mix, rate=rate * WARM_UP_RATE_FACTOR).start()
    view.begin(scenario.name, alias, alarms, clock, canary=canary, drift=drift)
    criteria = candidate_bundle.settings.acceptance

    def captured() -> Any:
        """What the pre-traffic hook replays: the baseline's newest captured requests on the capture bucket."""
        if stream is None:
            return Unavailable("monitoring.capture is off: no captured requests to replay")
        return read_capture(
            cloud.aws.client("s3"), stream.bucket, model, baseline.version, criteria.replay, now=clock.date()
        )

    try:
        warm_up(clock, captured if stream is not None else None, criteria.replay.min_requests * 2, stop)
        load.mix, load.rate = mix, rate
        controller = DeploymentController(
            model=model,
            alias=alias,
            baseline=baseline,
            candidate=candidate,
            cases=candidate_bundle.acceptance_cases(),
            criteria=criteria,
            policy=environment.rollout,
            alarms=alarms,
            clock=clock,
            decide=view.decision,
            stop=stop,
            replay=captured,
        )
        result = controller.run()
    finally:
        load.stop()
        canary.stop()
        view.end()
        gateway.stop()
        lambda_api.stop()
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
    decided = deciding_layer(outcome, reason, result.verdict)
    as_expected = scenario.expected is None or (
        outcome == scenario.expected and (scenario.layer is None or decided["layer"] == scenario.layer)
    )
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
        "as_expected": as_expected,
        "reason": reason,
        "decided_by": decided,
        "expected_layer": scenario.layer,
        "replay": _replay_figures(result.verdict),
        "requests": {
            version: {"total": s.total, "errors": s.errors, "client_errors": s.client_errors, "throttled": s.throttled}
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
        "wall_clock_s": round(time.monotonic() - started, 1),
    }


def warm_up(clock: RehearsalClock, captured: Any, enough: int, stop: threading.Event | None) -> None:
    """Let the baseline serve until ``captured()`` (the gate's own read) holds ``enough`` requests, between
    WARM_UP_S and MAX_WARM_UP_S rehearsed seconds (``captured`` None: capture is off, WARM_UP_S)."""
    start = clock.now()
    clock.sleep_until(start + WARM_UP_S, stop)
    while captured is not None and clock.now() < start + MAX_WARM_UP_S and not (stop is not None and stop.is_set()):
        records = captured()
        if isinstance(records, list) and len(records) >= enough:
            return
        clock.sleep_until(clock.now() + WARM_UP_POLL_S, stop)


def _replay_figures(verdict: Any) -> dict[str, str] | None:
    """The gate's replay rows (measured figures by name), None when the gate did not replay."""
    if verdict is None:
        return None
    rows = {c.name: c.measured for c in verdict.criteria if c.name == "replay" or c.name.startswith("replay ")}
    return rows or None


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
