"""The alarm rules that decide a rollback, pinned where mutation testing (``make mutate``) found them loose: single
metric values, rates with missing terms, every comparison, the statistic each alarm reads, Lambda's own metrics
through the evaluator, the kept state of ``ignore``, and the worst time to ALARM the spec checks steps against."""

from __future__ import annotations

import pytest

from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.metrics import MetricStore, datapoint, lambda_datapoints
from spec import catalog
from spec.alarms import (
    CAPTURE_DELIVERY_S,
    CLOUDWATCH_DELIVERY_S,
    AlarmDefinition,
    AlarmThresholds,
    ComparisonOperator,
    delivery_delay_s,
)

pytestmark = pytest.mark.unit
MODEL, FUNCTION, VERSION = "iris", "modelrail-production-iris", "7"


def alarm(name: str, thresholds: AlarmThresholds | None = None) -> AlarmDefinition:
    return next(d for d in (thresholds or AlarmThresholds()).definitions() if d.name == name)


def test_a_single_metric_alarm_reads_its_own_statistic() -> None:
    latency = alarm("latency-p99")
    assert latency.value({"latency": 1500.0}) == 1500.0
    assert latency.value({}) is None  # no request in the period: missing, not 0 ms
    assert latency.breaches(1500.0)


def test_rate_terms_without_data_count_as_zero_and_a_zero_denominator_is_no_data() -> None:
    throttles = alarm("throttle-rate")
    # Every call throttled: Lambda publishes Throttles and no Invocations; the FILLed term makes it 100%, not 75%.
    assert throttles.value({"throttles": 3.0}) == 100.0
    assert throttles.value({"invocations": 0.0, "throttles": 0.0}) is None
    errors = alarm("model-error-rate")
    assert errors.value({"requests": 1.0, "modelErrors": 1.0}) == 100.0  # one request, failed
    assert errors.value({"requests": 4.0, "unavailable": 1.0}) == 25.0
    assert errors.value({"modelErrors": 1.0}) is None  # no Requests in the period: missing


@pytest.mark.parametrize(
    ("operator", "below", "at", "above"),
    [
        ("GreaterThanThreshold", False, False, True),
        ("GreaterThanOrEqualToThreshold", False, True, True),
        ("LessThanThreshold", True, False, False),
        ("LessThanOrEqualToThreshold", True, True, False),
    ],
)
def test_every_comparison_beside_and_at_the_threshold(
    operator: ComparisonOperator, below: bool, at: bool, above: bool
) -> None:
    rule = alarm("latency-p99").model_copy(update={"comparison_operator": operator, "threshold": 5.0})
    assert [rule.breaches(v) for v in (4.0, 5.0, 6.0)] == [below, at, above]


def test_states_with_no_period_at_all() -> None:
    rule = alarm("latency-p99")
    ignore = rule.model_copy(update={"treat_missing_data": "ignore"})
    assert ignore.state([None, None, None]) == "INSUFFICIENT_DATA"  # nothing kept yet: CloudWatch's initial state
    breaching = rule.model_copy(update={"treat_missing_data": "breaching"})
    assert breaching.state([]) == "INSUFFICIENT_DATA"  # no period evaluated, nothing to count as breaching


def test_alarms_on_metrics_published_once_per_monitor_run_read_the_maximum() -> None:
    """Two monitor runs in one period (a period longer than the schedule) publish two datapoints: the alarm reads
    the worse one, never their sum (two 0.2 PSI runs are not a 0.4 divergence)."""
    per_run = [
        d
        for d in AlarmThresholds().definitions(monitor_schedule_minutes=1)
        if d.metrics[0].metric.cadence is catalog.Cadence.PER_MONITOR_RUN
    ]
    assert per_run, "no alarm reads a monitor metric any more"
    for definition in per_run:
        wide = definition.model_copy(update={"period_seconds": 300})
        store = MetricStore()
        (query,) = wide.metrics
        below = wide.threshold * 0.8
        store.add([datapoint(t, query.metric, below, model_name=MODEL, version=VERSION) for t in (60.0, 120.0)])
        evaluator = AlarmEvaluator(wide, store, MODEL, FUNCTION, VERSION)
        assert evaluator.period_value(0) == pytest.approx(below), definition.name
        assert evaluator.evaluate(300) == "OK", definition.name


def test_latency_alarm_reads_the_p99_of_the_period() -> None:
    store = MetricStore()
    store.add(
        datapoint(1.0, catalog.REQUEST_LATENCY, float(ms), model_name=MODEL, version=VERSION) for ms in range(1, 101)
    )
    evaluator = AlarmEvaluator(alarm("latency-p99"), store, MODEL, FUNCTION, VERSION)
    assert evaluator.period_value(0) == 99.0


def test_lambda_metrics_of_the_new_version_through_the_alias_reach_the_function_error_alarm() -> None:
    rule = alarm("function-error-rate", AlarmThresholds(evaluation_periods=1, datapoints_to_alarm=1))
    (errors,) = (q for q in rule.metrics if q.id == "errors")
    assert errors.dimensions(model_name=MODEL, function_name=FUNCTION, version=VERSION) == {
        "FunctionName": FUNCTION,
        "Resource": f"{FUNCTION}:live",
        "ExecutedVersion": VERSION,
    }
    store = MetricStore()
    for crashed in (True, False):
        store.add(lambda_datapoints(FUNCTION, VERSION, 10.0, error=crashed, duration_ms=5.0))
    for _ in range(10):  # the old version's invocations, all fine, do not dilute the new one's
        store.add(lambda_datapoints(FUNCTION, "6", 10.0, error=False, duration_ms=5.0))
    evaluator = AlarmEvaluator(rule, store, MODEL, FUNCTION, VERSION)
    assert evaluator.evaluate(60) == "ALARM"
    assert evaluator.last_values == [50.0]


def test_ignore_keeps_the_alarm_through_periods_without_data() -> None:
    rule = alarm("latency-p99", AlarmThresholds(evaluation_periods=1, datapoints_to_alarm=1)).model_copy(
        update={"treat_missing_data": "ignore"}
    )
    store = MetricStore()
    store.add([datapoint(1.0, catalog.REQUEST_LATENCY, 5000.0, model_name=MODEL, version=VERSION)])
    evaluator = AlarmEvaluator(rule, store, MODEL, FUNCTION, VERSION)
    assert evaluator.evaluate(60) == "ALARM"
    assert evaluator.evaluate(180) == "ALARM"  # two periods with no request: the state stays
    assert [t.state for t in evaluator.history] == ["ALARM"]


def test_the_reason_shows_missing_periods_and_an_alarm_that_never_fired_has_no_time() -> None:
    rule = alarm("model-error-rate", AlarmThresholds(evaluation_periods=2, datapoints_to_alarm=1))
    store = MetricStore()
    evaluator = AlarmEvaluator(rule, store, MODEL, FUNCTION, VERSION)
    assert evaluator.evaluate(60) == "OK"
    assert evaluator.fired_at() is None
    store.add([datapoint(70.0, catalog.REQUESTS, 1.0, model_name=MODEL, version=VERSION)] * 2)
    store.add([datapoint(70.0, catalog.MODEL_ERRORS, 1.0, model_name=MODEL, version=VERSION)])
    assert evaluator.evaluate(120) == "ALARM"
    assert evaluator.fired_at() == 120
    assert evaluator.history[-1].reason.startswith("[-, 50] against ")  # the first period had no request


def test_worst_time_to_alarm_the_spec_checks_each_step_against() -> None:
    assert delivery_delay_s(catalog.REQUESTS, 5) == CLOUDWATCH_DELIVERY_S == 60
    assert delivery_delay_s(catalog.PREDICTION_DIVERGENCE, 5) == CAPTURE_DELIVERY_S + 300 == 390
    assert alarm("model-error-rate").seconds_to_alarm(5) == 2 * 60 + 60  # 2 of 3 one-minute periods, then delivery
    assert alarm("prediction-divergence").seconds_to_alarm(5) == 300 + 390  # one schedule's period, 1 of 1


def test_only_the_drift_signal_never_stops_a_rollout() -> None:
    """prediction-divergence compares prediction mixes (a label swap keeps the mix): it notifies; every other alarm,
    canary-disagreement included, stops the rollout and rolls the version back."""
    definitions = AlarmThresholds().definitions()
    assert [d.name for d in definitions if not d.stops_rollout] == ["prediction-divergence"]
    assert all(d.treat_missing_data == "notBreaching" for d in definitions)  # an idle canary is never rolled back
