"""Each kind of rollout alarm rolls a rehearsed canary back because the candidate really fails on part of the traffic:
its worker answers, prints its EMF lines, the alias turns them into the rehearsal's metrics in rehearsed time, the
alarm reads them, and the controller rolls back. No datapoint is injected.

Each candidate passes its acceptance gate (its failure needs inputs the acceptance set does not have), as the
sample's nan-tail does. Time runs 120 times faster and the alarms use 10-second periods, 1 of 1.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from functions.acceptance.events import rest_proxy_event
from modelrail.local.environment import LocalCloud, LocalDeployment
from modelrail.local.worker import LambdaWorker
from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.alias import WeightedAlias
from modelrail.rehearsal.clock import RehearsalClock
from modelrail.rehearsal.controller import DeploymentController, RolloutResult
from modelrail.rehearsal.metrics import MetricStore
from spec import catalog
from spec.alarms import AlarmThresholds
from spec.bundle import ModelBundle
from spec.rollout import RolloutPolicy
from tests import builders

pytestmark = pytest.mark.e2e
FUNCTION = "modelrail-test-root"
P99_BUDGET_MS = 50.0


def root_with_three_defects(path: Path) -> Path:
    """sqrt(x) for whole x, looked up in a table of 0..199 (a rewrite of the old version's model), with three defects
    the acceptance set does not reach: 0 maps to NaN (NonFiniteOutputs); x past 199 is out of the table, an
    onnxruntime run error (ModelErrors); and a second input past 100 runs rounds of a 64x512 by 512x512 product, 1.25
    per square of the units past 100 (a data-dependent loop onnxruntime cannot fold away): 320 at 116, hundreds of ms
    (RequestLatency); 12,251 at 199, seconds, past a 1-second function timeout (Errors)."""
    table = np.sqrt(np.arange(200, dtype=np.float32))
    table[0] = np.nan
    state = helper.make_tensor_value_info("state", TensorProto.FLOAT, [64, 512])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["condition"], ["condition_out"]),
            helper.make_node("MatMul", ["state", "weights"], ["product"]),
            helper.make_node("Mul", ["product", "half"], ["state_out"]),  # stays finite, and keeps the work
        ],
        "round",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("condition", TensorProto.BOOL, []),
            state,
        ],
        [
            helper.make_tensor_value_info("condition_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [64, 512]),
        ],
    )
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(rng.random((512, 512), dtype=np.float32) / 512, "weights"),
        numpy_helper.from_array(np.ones((64, 512), dtype=np.float32), "start"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "second"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(100.0, dtype=np.float32), "hundred"),
        numpy_helper.from_array(np.array(1.25, dtype=np.float32), "per_square"),
        numpy_helper.from_array(np.array(99.0, dtype=np.float32), "most"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(True), "true"),
    ]
    nodes = [
        helper.make_node("Gather", ["x", "second"], ["column"], axis=1),
        helper.make_node("ReduceMax", ["column"], ["largest"], keepdims=0),
        helper.make_node("Sub", ["largest", "hundred"], ["past"]),
        helper.make_node("Clip", ["past", "zero", "most"], ["excess"]),
        helper.make_node("Mul", ["excess", "excess"], ["squared"]),
        helper.make_node("Mul", ["squared", "per_square"], ["rounds_float"]),
        helper.make_node("Cast", ["rounds_float"], ["rounds"], to=TensorProto.INT64),
        helper.make_node("Loop", ["rounds", "true", "start"], ["final"], body=body),
        helper.make_node("ReduceSum", ["final"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Cast", ["x"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["root"], axis=0),
        helper.make_node("Add", ["root", "nothing"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph(nodes, "root_with_three_defects", [x], [y], initializer=initializers)
    return builders.save(helper.make_model(graph, opset_imports=builders.OPSET), path)


def bundle(folder: Path, build: Callable[[Path], Path]) -> ModelBundle:
    folder.mkdir(parents=True)
    build(folder / "model.onnx")
    cases = [
        {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": data}], "expected": {"y": expected}}
        for data, expected in (([4.0, 16.0], [2.0, 4.0]), ([9.0, 1.0], [3.0, 1.0]))
    ]
    (folder / "acceptance.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))
    (folder / "modelrail.json").write_text(json.dumps({"name": "root", "acceptance": {"probe_requests": 5}}))
    return ModelBundle.load(folder)


# alarm -> (a request the candidate fails on and the old version answers, the metric that shows it)
KINDS: dict[str, tuple[list[float], catalog.Metric]] = {
    "model-error-rate": ([250.0, 4.0], catalog.MODEL_ERRORS),
    "non-finite-rate": ([0.0, 4.0], catalog.NON_FINITE_OUTPUTS),
    "latency-p99": ([4.0, 116.0], catalog.REQUEST_LATENCY),
}
# Alarms on the monitor's metrics: a real candidate's captured answers, the real monitor on its schedule, its
# datapoint in the rehearsal's metrics, the alarm in ALARM; each in its own end-to-end test.
MONITOR_DRIVEN = {
    "canary-disagreement": "test_rehearsal_layers.py::test_the_monitor_compares_the_canary_with_the_old_version_on_"
    "its_own_captured_requests (a label-swapping candidate)",
    "prediction-divergence": "test_rehearsal.py::test_canary_analysis_is_the_monitor_on_its_schedule_over_captured_"
    "records (the skewed candidate)",
}
# Alarms on Lambda's own metrics that a candidate drives: the inference function answers every failure itself
# (500/503), so Lambda counts Errors only for a crash, a timeout or running out of memory; the local worker imposes
# the function's timeout, and this candidate outlasts a 1-second one. Driven in its own test, below (its candidate
# runs with that timeout; its metric is Lambda's, under the function's dimensions).
LAMBDA_DRIVEN = {
    "function-error-rate": "test_a_candidate_that_outlasts_its_function_timeout_is_rolled_back_by_the_error_alarm",
}
# Alarms on Lambda's own metrics that the function's configuration drives, whatever the candidate: the alias throttles
# as Lambda does past the function's reserved concurrency, and counts Throttles under the version it routed to.
CONFIGURATION_DRIVEN = {
    "throttle-rate": "test_a_reserved_concurrency_too_small_for_the_users_traffic_rolls_back_by_the_throttle_alarm",
}


def test_every_alarm_kind_is_driven_end_to_end() -> None:
    kinds = [set(KINDS), set(MONITOR_DRIVEN), set(LAMBDA_DRIVEN), set(CONFIGURATION_DRIVEN)]
    assert sum(len(k) for k in kinds) == len(set.union(*kinds))  # each in one place
    assert set.union(*kinds) == {d.name for d in AlarmThresholds().definitions()}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCloud, dict[str, LocalDeployment]]]:
    """The old version (sqrt) as version 1 and the candidate as version 2, deployed on one local cloud."""
    folder = tmp_path_factory.mktemp("bundles")
    baseline = bundle(folder / "baseline", builders.square_root)
    candidate = bundle(folder / "candidate", root_with_three_defects)
    with LocalCloud() as local:
        yield local, {"1": local.deploy(baseline), "2": local.deploy(candidate)}


@pytest.fixture(scope="module")
def workers(
    cloud: tuple[LocalCloud, dict[str, LocalDeployment]],
) -> tuple[LambdaWorker, LambdaWorker, ModelBundle]:
    """The old version and the candidate, one execution environment each, for every rehearsed rollout."""
    local, deployed = cloud
    with ThreadPoolExecutor(max_workers=2) as pool:  # two versions cold-start at once, as in Lambda
        old, new = pool.map(lambda version: local.start_worker(deployed[version], version), ("1", "2"))
    assert deployed["2"].model.bundle is not None
    return old, new, deployed["2"].model.bundle


def rehearse_canary(
    old: LambdaWorker,
    new: LambdaWorker,
    candidate: ModelBundle,
    failing_input: list[float],
    *,
    reserved_concurrency: int | None = None,
    users: int = 1,
    pause_s: float = 0.0,
    users_after_gate: bool = False,
) -> tuple[RolloutResult, list[str], WeightedAlias, MetricStore, list[AlarmEvaluator]]:
    """A canary rollout of ``new`` over ``old`` under steady user traffic of ``failing_input`` through the alias
    (``users`` clients, each pausing ``pause_s`` after each answer; from before the deployment, or from the moment
    the pre-traffic hook passed with ``users_after_gate``), the function's ``reserved_concurrency`` on the alias, the
    rollout alarms evaluated as they are deployed (10-second periods, 1 of 1)."""
    clock = RehearsalClock(120)
    store = MetricStore()
    alias = WeightedAlias(FUNCTION, clock, store, reserved_concurrency=reserved_concurrency)
    for worker in (old, new):
        alias.add_version(worker)
    alias.point_to("1")
    thresholds = AlarmThresholds(
        period_seconds=10, evaluation_periods=1, datapoints_to_alarm=1, p99_latency_ms=P99_BUDGET_MS
    )
    alarms = [AlarmEvaluator(d, store, "root", FUNCTION, "2") for d in thresholds.definitions() if d.stops_rollout]
    decisions: list[str] = []
    stop = threading.Event()
    gate_passed = threading.Event()

    def decide(_at: float, message: str) -> None:
        decisions.append(message)
        if message.startswith("pre-traffic hook passed"):
            gate_passed.set()

    controller = DeploymentController(
        model="root",
        alias=alias,
        baseline=old,
        candidate=new,
        cases=candidate.acceptance_cases(),
        criteria=candidate.settings.acceptance,
        policy=RolloutPolicy(kind="canary", percentage=25, interval_minutes=10),
        alarms=alarms,
        clock=clock,
        decide=decide,
        stop=stop,
    )
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": failing_input}]})
    request = rest_proxy_event("POST", "/v2/models/root/infer", {"content-type": "application/json"}, body.encode())

    def user() -> None:  # steady user traffic through the alias until the deployment's end
        if users_after_gate:
            while not (gate_passed.wait(0.05) or stop.is_set()):
                pass
        while not stop.is_set():
            alias.invoke(request)
            stop.wait(pause_s)

    traffic = [threading.Thread(target=user, daemon=True) for _ in range(users)]
    for thread in traffic:
        thread.start()
    try:
        result = controller.run()
    finally:
        stop.set()
        for thread in traffic:
            thread.join(timeout=30)
    return result, decisions, alias, store, alarms


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_candidate_failing_on_real_traffic_is_rolled_back_by_its_alarm(
    workers: tuple[LambdaWorker, LambdaWorker, ModelBundle], kind: str
) -> None:
    failing_input, metric = KINDS[kind]
    old, new, candidate = workers

    result, decisions, alias, store, _ = rehearse_canary(old, new, candidate, failing_input)

    assert result.outcome == "rolled_back", decisions
    assert result.reason.startswith(f"alarm {kind} in ALARM"), result.reason
    assert not any("100% version 2" in d for d in decisions)
    assert alias.weights() == {"1": 1.0}
    # What the alarm read is what the candidate's own EMF lines said, under its own version's dimensions.
    dimensions = {"ModelName": "root", "ModelVersion": "2"}
    seen = store.values(metric.namespace, metric.name, dimensions, 0, math.inf)
    if metric is catalog.REQUEST_LATENCY:
        assert max(seen) > P99_BUDGET_MS
    else:
        assert sum(seen) > 0
    old_answers = store.values(metric.namespace, metric.name, {**dimensions, "ModelVersion": "1"}, 0, math.inf)
    assert old_answers  # the old version answered the same requests, well
    assert max(old_answers) < P99_BUDGET_MS if metric is catalog.REQUEST_LATENCY else not any(old_answers)


def test_a_candidate_that_outlasts_its_function_timeout_is_rolled_back_by_the_error_alarm(
    cloud: tuple[LocalCloud, dict[str, LocalDeployment]], workers: tuple[LambdaWorker, LambdaWorker, ModelBundle]
) -> None:
    """The candidate deployed with function.timeout_seconds 1: a second input of 199 runs 12,251 rounds of its loop
    (seconds), so Lambda stops each such invocation at 1 s (Sandbox.Timedout), counts it in the version's Errors and
    starts a new execution environment; function-error-rate reads Errors over Invocations and rolls back."""
    local, deployed = cloud
    old, _, candidate = workers
    new = local.start_worker(deployed["2"], "2", timeout_seconds=1)
    try:
        result, decisions, alias, store, _ = rehearse_canary(old, new, candidate, [4.0, 199.0])
    finally:
        new.stop()

    assert result.outcome == "rolled_back", decisions
    assert result.reason.startswith("alarm function-error-rate in ALARM"), result.reason
    assert not any("100% version 2" in d for d in decisions)
    assert alias.weights() == {"1": 1.0}
    # Lambda's own metric, under the function's dimensions: the candidate's timed-out invocations, none of the old's.
    dimensions = {"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:live", "ExecutedVersion": "2"}
    errors = store.values("AWS/Lambda", catalog.ERRORS.name, dimensions, 0, math.inf)
    assert sum(errors) > 0
    assert max(store.values("AWS/Lambda", catalog.DURATION.name, dimensions, 0, math.inf)) == 1000.0
    old_errors = store.values("AWS/Lambda", catalog.ERRORS.name, {**dimensions, "ExecutedVersion": "1"}, 0, math.inf)
    assert old_errors  # the old version answered the same requests, without an error
    assert not any(old_errors)
    assert new.replacements >= 1  # each timeout reset the environment: the next invocation was a cold start


def test_a_reserved_concurrency_too_small_for_the_users_traffic_rolls_back_by_the_throttle_alarm(
    workers: tuple[LambdaWorker, LambdaWorker, ModelBundle],
) -> None:
    """The function's reserved concurrency 1 against four users each sending a request every 50 ms (about 80/s): past
    one invocation in flight, or past Lambda's 10 per second per unit of concurrency, a request is throttled (never
    runs; Throttles under the version the alias routed it to, "Lambda scaling behavior"). The candidate answers
    this request well, so only throttle-rate (Throttles/(Invocations+Throttles) of version 2) can fire. The users
    arrive once the pre-traffic hook has passed (a surge during the canary): while the hook runs, their requests would
    hold the one execution and the hook's own invocations would be throttled, a deployment blocked at the gate
    (test_rehearsal_throttling.py)."""
    old, new, candidate = workers

    result, decisions, alias, store, alarms = rehearse_canary(
        old, new, candidate, [4.0, 16.0], reserved_concurrency=1, users=4, pause_s=0.05, users_after_gate=True
    )

    assert result.outcome == "rolled_back", decisions
    assert result.reason.startswith("alarm throttle-rate in ALARM"), result.reason
    assert not any("100% version 2" in d for d in decisions)
    assert alias.weights() == {"1": 1.0}
    # No other alarm fired, before it or with it.
    assert [a.name for a in alarms if a.fired_at() is not None] == ["throttle-rate"]
    dimensions = {"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:live", "ExecutedVersion": "2"}
    assert sum(store.values("AWS/Lambda", catalog.THROTTLES.name, dimensions, 0, math.inf)) > 0
    assert alias.stats["2"].throttled > 0
    assert alias.stats["2"].errors == 0  # a throttle is not the version failing
    # The same users without the reserved concurrency: nothing throttled, the candidate promoted.
    unlimited, decisions, alias, store, _ = rehearse_canary(
        old, new, candidate, [4.0, 16.0], users=4, pause_s=0.05, users_after_gate=True
    )
    assert unlimited.outcome == "promoted", decisions
    assert not store.values("AWS/Lambda", catalog.THROTTLES.name, dimensions, 0, math.inf)
    assert alias.stats["2"].total > 0
