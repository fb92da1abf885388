"""CloudWatch's alarm evaluation as the rehearsal plays it: M of N, each missing-data treatment, periods,
statistics and rates, on the very AlarmDefinition objects the CDK stack turns into alarms."""

from __future__ import annotations

import pytest

from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.metrics import Datapoint, MetricStore, emf_datapoints, statistic
from spec.alarms import AlarmDefinition, AlarmThresholds, MetricQuery, MetricSource

MODEL, FUNCTION, VERSION = "iris", "modelrail-production-iris", "7"


def single(treat: str, *, m: int = 2, n: int = 3, threshold: float = 10.0) -> AlarmDefinition:
    return AlarmDefinition(
        name="latency-p99",
        description="test",
        metrics=(MetricQuery(id="latency", source=MetricSource.MODEL, metric_name="RequestLatency", statistic="p99"),),
        period_seconds=60,
        threshold=threshold,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        treat_missing_data=treat,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 1, 1], "OK"),
        ([20, 1, 1], "OK"),  # 1 of 3 breaching: fewer than datapoints_to_alarm
        ([20, 1, 20], "ALARM"),  # 2 of 3
        ([20, 20, 1, 1, 1], "OK"),  # only the latest evaluation_periods count
    ],
)
def test_m_out_of_n(values: list[float], expected: str) -> None:
    assert single("notBreaching").state(values) == expected


@pytest.mark.parametrize(
    ("treat", "values", "current", "expected"),
    [
        ("notBreaching", [None, None, None], "ALARM", "OK"),  # an idle canary is neither rolled back nor blocked
        ("notBreaching", [20, None, None], "OK", "OK"),
        ("breaching", [None, None, None], "OK", "ALARM"),
        ("breaching", [20, None, 1], "OK", "ALARM"),  # the missing period counts as breaching
        ("missing", [None, None, None], "ALARM", "INSUFFICIENT_DATA"),
        ("missing", [20, None, 20], "OK", "ALARM"),  # present datapoints alone decide
        ("missing", [None, None, 20], "OK", "OK"),
        ("ignore", [None, None, None], "ALARM", "ALARM"),  # the current state is kept
        ("ignore", [None, None, None], "OK", "OK"),
        ("ignore", [20, 20, None], "OK", "ALARM"),
    ],
)
def test_missing_data_treatments(treat: str, values: list[float | None], current: str, expected: str) -> None:
    assert single(treat).state(values, current=current) == expected


def test_comparison_operators_at_the_threshold() -> None:
    at = single("notBreaching", m=1, n=1, threshold=5.0)
    assert at.state([5.0]) == "OK"  # GreaterThanThreshold is strict
    inclusive = at.model_copy(update={"comparison_operator": "GreaterThanOrEqualToThreshold"})
    assert inclusive.state([5.0]) == "ALARM"


def test_statistics() -> None:
    values = [float(v) for v in range(1, 101)]
    assert statistic(values, "Sum") == 5050
    assert statistic(values, "Average") == 50.5
    assert statistic(values, "SampleCount") == 100
    assert statistic(values, "p99") == 99
    assert statistic(values, "p50") == 50
    assert statistic([], "Sum") is None


def points(time: float, name: str, values: list[float], version: str = VERSION) -> list[Datapoint]:
    dimensions = frozenset({("ModelName", MODEL), ("ModelVersion", version)})
    return [Datapoint(time, "modelrail", name, dimensions, v) for v in values]


def test_rate_alarm_over_periods_on_the_new_version_only() -> None:
    definition = next(
        d
        for d in AlarmThresholds(model_error_rate_percent=5, evaluation_periods=2, datapoints_to_alarm=2).definitions()
        if d.name == "model-error-rate"
    )
    store = MetricStore()
    evaluator = AlarmEvaluator(definition, store, MODEL, FUNCTION, VERSION)
    # Period [0, 60): 1 error in 10 requests (10%). Period [60, 120): 0 in 10. The old version fails a lot.
    store.add(points(10, "Requests", [1] * 10) + points(10, "ModelErrors", [1] + [0] * 9))
    store.add(points(70, "Requests", [1] * 10) + points(70, "ModelErrors", [0] * 10))
    store.add(points(70, "Requests", [1] * 10, version="6") + points(70, "ModelErrors", [1] * 10, version="6"))

    assert evaluator.evaluate(59) == "INSUFFICIENT_DATA"  # nothing evaluated before a period ends
    assert evaluator.evaluate(60) == "OK"  # [missing, 10%]: 1 of 2 breaching
    assert evaluator.last_values == [None, 10.0]
    assert evaluator.evaluate(120) == "OK"  # [10%, 0%]
    store.add(points(130, "Requests", [1] * 4) + points(130, "ModelErrors", [1, 0, 0, 0]))
    assert evaluator.evaluate(180) == "OK"  # [0%, 25%]
    store.add(points(190, "Requests", [1] * 4) + points(190, "ModelErrors", [1, 1, 0, 0]))
    assert evaluator.evaluate(240) == "ALARM"  # [25%, 50%]
    assert evaluator.fired_at() == 240
    assert "[25, 50]" in evaluator.history[-1].reason


def test_emf_records_become_datapoints() -> None:
    line = (
        '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"modelrail","Dimensions":[["ModelName",'
        '"ModelVersion"]],"Metrics":[{"Name":"Requests","Unit":"Count"},{"Name":"ModelErrors","Unit":"Count"}]}]},'
        '"ModelName":"iris","ModelVersion":"7","Requests":[1.0],"ModelErrors":[0.0]}'
    )
    found = emf_datapoints(['{"level":"INFO"}', line], time=12.5)
    assert [(p.name, p.value, p.time) for p in found] == [("Requests", 1.0, 12.5), ("ModelErrors", 0.0, 12.5)]
    assert found[0].dimensions == frozenset({("ModelName", "iris"), ("ModelVersion", "7")})
