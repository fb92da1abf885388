"""When a promoted rollout proved nothing about the candidate, and the failed shares the report gives."""

from __future__ import annotations

import pytest

from modelrail.rehearsal.alarms import AlarmEvaluator
from modelrail.rehearsal.metrics import Datapoint, MetricStore
from modelrail.rehearsal.verdict import RequestLog, deployment_window, unjudged
from spec.alarms import AlarmThresholds

pytestmark = pytest.mark.unit
MODEL, FUNCTION = "root", "modelrail-test-root"


def alarms(store: MetricStore, period: int = 60) -> list[AlarmEvaluator]:
    thresholds = AlarmThresholds(period_seconds=period, evaluation_periods=1, datapoints_to_alarm=1)
    return [AlarmEvaluator(d, store, MODEL, FUNCTION, "2") for d in thresholds.definitions()]


def answered(log: RequestLog, store: MetricStore, version: str, time: float, status: int) -> None:
    """A request through the alias, and the Requests datapoint the handler prints for it."""
    log.observe(version, time, {}, {"statusCode": status})
    dims = frozenset({("ModelName", MODEL), ("ModelVersion", version)})
    store.add([Datapoint(time, "modelrail", "Requests", dims, 1.0)])


def test_a_candidate_whose_every_answer_was_4xx_scored_no_rows() -> None:
    log, store = RequestLog(), MetricStore()
    for second in range(0, 600, 5):
        answered(log, store, "2", second, 400)
    reason = unjudged(log, "2", alarms(store), evaluated_until=600)
    assert reason == "the candidate scored no rows: all 120 of its requests were answered 4xx"


def test_a_candidate_that_got_no_requests_proved_nothing() -> None:
    log, store = RequestLog(), MetricStore()
    answered(log, store, "1", 10, 200)
    assert unjudged(log, "2", alarms(store), evaluated_until=600) == "the candidate received no user requests"


def test_requests_no_evaluated_period_saw_are_too_few() -> None:
    """All at once, then promoted before the first period that holds the candidate's requests is evaluated."""
    log, store = RequestLog(), MetricStore()
    answered(log, store, "2", 125, 200)
    answered(log, store, "2", 130, 200)
    reason = unjudged(log, "2", alarms(store), evaluated_until=170)
    assert reason is not None
    assert reason.startswith("no rollout alarm had a datapoint from the candidate's 2 scored")
    # One evaluation later, the period 120-180 s holds their datapoints: an alarm judged them.
    assert unjudged(log, "2", alarms(store), evaluated_until=180) is None


def test_a_period_with_only_the_gates_datapoints_does_not_count() -> None:
    """The acceptance gate's requests reach the candidate's metrics, but they are not its user traffic."""
    log, store = RequestLog(), MetricStore()
    dims = frozenset({("ModelName", MODEL), ("ModelVersion", "2")})
    store.add([Datapoint(30, "modelrail", "Requests", dims, 1.0)])  # the gate, in the period 0-60 s
    answered(log, store, "2", 190, 200)  # one user request, in a period never evaluated
    assert unjudged(log, "2", alarms(store), evaluated_until=180) is not None


def test_the_window_runs_from_the_candidates_first_request_to_the_decision() -> None:
    log, store = RequestLog(), MetricStore()
    answered(log, store, "1", 10, 503)  # before the candidate's first request: outside the window
    for second in range(100, 200, 10):
        answered(log, store, "1", second, 200)
        answered(log, store, "2", second + 1, 500 if second < 130 else 200)
    answered(log, store, "2", 150, 400)
    answered(log, store, "1", 250, 503)  # after the decision
    window = deployment_window(log, "2", decided_at=200)
    assert window == {
        "seconds": 99.0,
        "requests": 20,  # version 1's request at 100 s precedes the candidate's first, at 101 s
        "failed": 3,
        "failed_share": 0.15,
        "candidate_requests": 11,
        "candidate_failed": 3,
        "candidate_client_errors": 1,
        "candidate_failed_share": round(3 / 11, 4),
    }
    assert deployment_window(log, "3", decided_at=200) is None


def test_a_closed_log_records_nothing_more() -> None:
    log = RequestLog()
    log.observe("2", 1, {}, {"statusCode": 200})
    log.close()
    log.observe("2", 2, {}, {"statusCode": 200})
    assert [a.time for a in log.answers("2")] == [1]
