"""The load report's latency histogram against numpy's exact percentiles, and the open-loop schedule's due times."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from modelrail.load.histogram import LatencyHistogram
from modelrail.load.schedule import RateProfile


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_the_histograms_precision_of_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Latencies as they come: a log-normal body around 3 ms and a tail of slow answers up to seconds.
    values = np.concatenate([rng.lognormal(np.log(3.0), 0.5, 20_000), rng.uniform(50, 3000, 200)])
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(float(value))
    for percent in (50, 90, 99, 99.9):
        exact = float(np.percentile(values, percent, method="inverted_cdf"))
        reported = histogram.percentile(percent)
        assert reported is not None
        assert exact <= reported <= exact * (1 + histogram.precision) + 1e-9, (percent, reported, exact)
    assert histogram.percentile(100) == histogram.max_ms == float(values.max())
    assert histogram.min_ms == float(values.min())
    assert histogram.count == len(values)
    assert histogram.mean_ms == pytest.approx(float(values.mean()))


def test_merged_histograms_report_what_one_histogram_of_everything_would() -> None:
    rng = np.random.default_rng(7)
    first, second, together = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value in rng.lognormal(1.0, 1.0, 5000):
        first.record(float(value))
        together.record(float(value))
    for value in rng.lognormal(3.0, 0.2, 5000):
        second.record(float(value))
        together.record(float(value))
    first.merge(second)
    assert first.summary() == pytest.approx(together.summary())


def test_an_empty_histogram_reports_no_percentiles_and_bad_values_are_refused() -> None:
    histogram = LatencyHistogram()
    assert histogram.summary() == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "p99.9": None,
        "max": None,
        "mean": None,
    }
    with pytest.raises(ValueError, match="finite, non-negative"):
        histogram.record(float("nan"))
    with pytest.raises(ValueError, match="finite, non-negative"):
        histogram.record(-1.0)


def test_the_schedule_holds_a_constant_rate_a_ramp_and_steps() -> None:
    constant = RateProfile.parse("50", 3).offsets()
    assert len(constant) == 150
    assert np.allclose(np.diff(constant), 0.02)
    profile = RateProfile.parse("10:100", 4)
    ramp = profile.offsets()
    assert len(ramp) == 220  # the mean rate 55/s for 4 s
    # between two due times, the rate is the ramp's at their midpoint
    for before, after in itertools.pairwise(ramp):
        assert 1 / (after - before) == pytest.approx(profile.target_rps_at((before + after) / 2), rel=0.02)
    steps = RateProfile.parse("10,20,40", 3).offsets()
    assert len(steps) == 70
    assert [sum(1 for t in steps if n <= t < n + 1) for n in range(3)] == [10, 20, 40]


@pytest.mark.parametrize("text", ["fast", "10:", "-5", "0", "1:2:3", "inf"])
def test_a_bad_rate_names_the_option_and_the_forms_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="--rps"):
        RateProfile.parse(text, 10)
