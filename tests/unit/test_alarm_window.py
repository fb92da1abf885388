"""The M-of-N window is exactly evaluation_periods wide: data chosen so that N-1, N and N+1 periods disagree
(a window off by one period would alarm on stale breaches, or miss fresh ones)."""

from __future__ import annotations

import pytest

from spec.alarms import AlarmDefinition, MetricQuery, MetricSource

pytestmark = pytest.mark.unit

B, G = 20.0, 1.0  # a breaching and a good datapoint against the threshold 10


def m_of_n(m: int, n: int, treat: str = "notBreaching") -> AlarmDefinition:
    return AlarmDefinition(
        name="latency-p99",
        description="test",
        metrics=(MetricQuery(id="latency", source=MetricSource.MODEL, metric_name="RequestLatency", statistic="p99"),),
        period_seconds=60,
        threshold=10.0,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        treat_missing_data=treat,
    )


@pytest.mark.parametrize(
    ("m", "n", "treat", "values", "expected"),
    [
        # 2 of 3: the breach 4 periods ago has left the window (N+1 would see 2 breaches and alarm).
        (2, 3, "notBreaching", [B, G, G, B], "OK"),
        # ... and the breach 3 periods ago is still in it (N-1 would see 1 breach and stay OK).
        (2, 3, "notBreaching", [G, B, G, B], "ALARM"),
        # 3 of 5 over a longer history: exactly 3 breaches in the latest 5, a 4th just outside it.
        (3, 5, "notBreaching", [B, G, B, G, B, G, B], "ALARM"),
        (3, 5, "notBreaching", [B, B, G, G, B, G, B], "OK"),
        # 1 of 1: only the latest period counts.
        (1, 1, "notBreaching", [B, G], "OK"),
        # missing: a window with no data is INSUFFICIENT_DATA even with a breach one period before it.
        (1, 3, "missing", [B, None, None, None], "INSUFFICIENT_DATA"),
        # breaching: missing periods count only inside the window.
        (2, 3, "breaching", [None, G, G, B], "OK"),
    ],
)
def test_only_the_latest_evaluation_periods_count(
    m: int, n: int, treat: str, values: list[float | None], expected: str
) -> None:
    assert m_of_n(m, n, treat).state(values) == expected
