"""Drift statistics against values computed by hand on small data: PSI, baselines, prediction comparison."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from functions.monitor.capture import Columns, argmax_key, hours, parse_records, tensor_columns
from functions.monitor.stats import (
    EPSILON,
    Column,
    categorical_profile,
    compare,
    compare_distributions,
    compute_baseline,
    drift_report,
    numeric_profile,
    prediction_divergence,
    psi,
    verdict,
)


def test_psi_of_shifted_shares() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.173287 + 0.101366
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_psi_normalizes_counts() -> None:
    assert psi([10, 10], [25, 75]) == pytest.approx(psi([0.5, 0.5], [0.25, 0.75]))


def test_an_empty_bin_counts_as_epsilon_and_stays_finite() -> None:
    # expected [1, 0] -> [1, 1e-4]: (0.5 - 1) ln(0.5) + (0.5 - 1e-4) ln(0.5 / 1e-4) = 0.346574 + 4.257744
    assert EPSILON == 1e-4
    assert psi([1, 0], [0.5, 0.5]) == pytest.approx(4.604318, abs=1e-6)


def test_psi_refuses_an_empty_side() -> None:
    with pytest.raises(ValueError, match="at least one observation"):
        psi([1, 1], [0, 0])


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, "stable"), (0.0999, "stable"), (0.1, "moderate"), (0.25, "moderate"), (0.2501, "significant")],
)
def test_verdict_thresholds(score: float, expected: str) -> None:
    assert verdict(score) == expected


def test_numeric_profile_quantile_bins() -> None:
    # quantiles of 1..8 at 0, .25, .5, .75, 1, as data values: 1, 2, 4, 6, 8; bins [1,2) [2,4) [4,6) [6,+inf)
    p = numeric_profile(list(range(1, 9)), bins=4)
    assert p["edges"] == [1, 2, 4, 6, 8]
    assert p["counts"] == [1, 2, 2, 3]
    assert p["missing"] == 0.0


def test_numeric_profile_counts_missing_and_collapses_tied_edges() -> None:
    p = numeric_profile([1.0, 1.0, 1.0, 2.0, None, math.nan, math.inf, 1.0], bins=4)
    assert p["missing"] == pytest.approx(3 / 8)
    assert p["edges"] == [1.0, 2.0]  # the quantiles 1, 1, 1, 1.25, 2 collapse
    assert p["counts"] == [5]


def test_a_constant_feature_still_sees_values_below_it() -> None:
    p = numeric_profile([3.0] * 10)
    assert p["counts"] == [0, 10]
    assert compare(p, [1.0] * 10).actual == [1.0, 0.0, 0.0]


def test_categorical_profile_top_other_missing() -> None:
    p = categorical_profile(["a", "a", "b", "c", None], top=2)
    assert p["shares"] == {"a": 0.4, "b": 0.2}  # b and c tie: the first by name is kept
    assert p["other"] == pytest.approx(0.2)
    assert p["missing"] == pytest.approx(0.2)


def test_numeric_window_against_the_profile() -> None:
    p = {"kind": "numeric", "edges": [1, 2.8, 4.6, 6.4, 8.2, 10], "counts": [2, 2, 2, 2, 2], "missing": 0.0}
    c = compare(p, [0, 1, 1, 20, None])
    # below the first edge and above the last land in the outer bins; None is the missing bin
    assert c.actual == pytest.approx([0.6, 0, 0, 0, 0.2, 0.2])
    assert c.expected == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2, 0.0])
    # (0.6-0.2) ln 3 + 3 (1e-4-0.2) ln(1e-4/0.2) + 0 + (0.2-1e-4) ln(0.2/1e-4)
    assert c.psi == pytest.approx(6.517127, abs=1e-5)
    assert c.labels[0] == "[-inf, 2.8)"
    assert c.labels[-1] == "(missing)"


def test_categorical_window_counts_unseen_values_as_other() -> None:
    p = {"kind": "categorical", "shares": {"a": 0.5, "b": 0.5}, "other": 0.0, "missing": 0.0}
    c = compare(p, ["a", "a", "z", "b"])
    assert c.actual == [0.5, 0.25, 0.25, 0.0]
    assert c.labels == ["a", "b", "(other)", "(missing)"]


def test_prediction_distributions_compared_with_psi() -> None:
    # reference 50/50, candidate 80/20: 0.3 ln 1.6 + (-0.3) ln 0.4 = 0.141001 + 0.274887
    score = compare_distributions(["0"] * 50 + ["1"] * 50, ["0"] * 80 + ["1"] * 20)
    assert score == pytest.approx(0.415888, abs=1e-6)
    assert verdict(score) == "significant"
    assert compare_distributions([0, 1, 2] * 30, [2, 1, 0] * 30) == 0.0  # integer labels, same mix


def test_numeric_predictions_compared_with_the_reference_bins() -> None:
    reference = [i / 100 for i in range(100)]
    assert compare_distributions(reference, reference, kind="numeric") == 0.0
    assert compare_distributions(reference, [v + 0.5 for v in reference], kind="numeric") > 0.25


def test_baseline_document_from_columns() -> None:
    baseline = compute_baseline(
        {"x": Column("numeric", [1.0, 2.0, 3.0, 4.0]), "colour": Column("categorical", ["red", "red", "blue", None])},
        {"label": Column("categorical", ["1", "0", "1", "1"])},
    )
    assert baseline["rows"] == 4
    # 10 bins asked, 4 distinct values: edges 1, 2, 3, 4 and bins [1,2) [2,3) [3,+inf)
    assert baseline["features"]["x"]["counts"] == [1, 1, 2]
    assert baseline["features"]["colour"] == {
        "kind": "categorical",
        "shares": {"red": 0.5, "blue": 0.25},
        "other": 0.0,
        "missing": 0.25,
    }
    assert baseline["predictions"]["label"]["shares"] == {"1": 0.75, "0": 0.25}
    json.dumps(baseline)  # it is a JSON document


def test_drift_report_maxima_and_features_not_captured() -> None:
    baseline = compute_baseline(
        {"a": Column("numeric", list(range(100))), "b": Column("numeric", list(range(100)))},
        {"label": Column("categorical", ["x", "y"] * 50)},
    )
    report = drift_report(
        baseline,
        {"a": Column("numeric", [v + 50 for v in range(100)])},  # b excluded from capture
        {"label": Column("categorical", ["x", "y"] * 50)},
        rows=100,
    )
    by_name = {e.name: e for e in report.entries}
    assert by_name["a"].verdict == "significant"
    assert by_name["b"].psi is None
    assert by_name["b"].rows == 0
    assert report.feature_drift_max == by_name["a"].psi
    assert report.prediction_drift == 0.0


def test_tensors_become_named_feature_and_prediction_columns() -> None:
    columns = Columns()
    columns.add(
        [
            {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]},
            {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["Oslo", "Lima"]},
            {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [30, 40]},
        ],
        [
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {"name": "proba", "shape": [2], "datatype": "BYTES", "data": [{"0": 0.2, "1": 0.8}, {"0": 0.9, "1": 0.1}]},
            {"name": "score", "shape": [2], "datatype": "FP32", "data": [0.5, 0.25]},
        ],
    )
    f, p = columns.features, columns.predictions
    assert sorted(f) == ["age", "city", "x[0]", "x[1]", "x[2]"]
    assert f["x[1]"].values == [2, 5]
    assert f["x[1]"].kind == "numeric"
    assert f["city"].kind == "categorical"
    assert f["age"].kind == "numeric"
    assert (p["label"].kind, p["proba"].kind, p["score"].kind) == ("categorical", "categorical", "numeric")
    assert p["proba"].values == ["1", "0"]  # ZipMap rows count as their argmax key
    assert columns.rows == 2


def test_argmax_key_ignores_nan_and_takes_the_first_on_ties() -> None:
    assert argmax_key({"a": math.nan, "b": 0.4, "c": 0.4}) == "b"
    assert argmax_key({}) is None


def test_capture_objects_gzip_or_plain_with_bad_lines_skipped() -> None:
    lines = b'{"model": "m"}\nnot json\n\n{"model": "n"}\n'
    assert [r["model"] for r in parse_records(gzip.compress(lines))] == ["m", "n"]
    assert [r["model"] for r in parse_records(lines)] == ["m", "n"]


def test_window_hours_include_the_late_partition() -> None:
    from datetime import UTC, datetime

    start = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    end = datetime(2026, 11, 28, 10, 50, tzinfo=UTC)
    assert hours(start, end) == ["2026-11-28-09", "2026-11-28-10", "2026-11-28-11"]


def test_tensor_columns_row_count() -> None:
    _, rows = tensor_columns([{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}])
    assert rows == 3


def test_prediction_divergence_is_the_worst_output_shared_by_both_versions() -> None:
    # Two outputs: the label moves from 50/50 to 80/20 (0.415888, as above), the score does not move (0.0);
    # an output only the new version gives has nothing to compare against and is left out.
    old = {
        "label": Column("categorical", ["0"] * 50 + ["1"] * 50),
        "score": Column("numeric", [i / 100 for i in range(100)]),
    }
    new = {
        "score": Column("numeric", [i / 100 for i in range(100)]),
        "label": Column("categorical", ["0"] * 80 + ["1"] * 20),
        "extra": Column("categorical", ["x"] * 100),
    }
    assert prediction_divergence(old, new) == pytest.approx(0.415888, abs=1e-6)
    # the order of the outputs does not decide which is the worst
    assert prediction_divergence(old, dict(reversed(new.items()))) == pytest.approx(0.415888, abs=1e-6)
    # the old version's kind bins the comparison: its numeric score, read as categories, would differ
    shifted = {"score": Column("numeric", [i / 100 + 0.005 for i in range(100)])}
    divergence = prediction_divergence(old, shifted)
    assert divergence == pytest.approx(compare_distributions(old["score"].values, shifted["score"].values, "numeric"))
    assert divergence is not None
    assert divergence < 0.1  # half a bin's shift: read as categories, every value would be new


def test_prediction_divergence_waits_for_min_rows_on_the_new_side() -> None:
    old = {"label": Column("categorical", ["0"] * 50 + ["1"] * 50)}
    assert prediction_divergence(old, {"label": Column("categorical", ["1"] * 49)}) is None
    at_min = prediction_divergence(old, {"label": Column("categorical", ["1"] * 50)})
    assert at_min is not None
    assert verdict(at_min) == "significant"
    assert prediction_divergence(old, {"label": Column("categorical", ["1"] * 10)}, min_rows=10) == at_min
    # nothing from the old version (it answered no request in the window): nothing to compare
    sixty = {"label": Column("categorical", ["1"] * 60)}
    assert prediction_divergence({"label": Column("categorical", [])}, sixty) is None
    assert prediction_divergence({}, sixty) is None


@pytest.mark.parametrize(
    ("expected", "actual"),
    [([1, 1], [1, 1, 1]), ([], []), ([[1, 1]], [[1, 1]])],
    ids=["different-bins", "no-bins", "not-a-vector"],
)
def test_psi_refuses_share_vectors_that_do_not_match(expected: list, actual: list) -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi(expected, actual)


def test_psi_refuses_an_empty_reference_side() -> None:
    with pytest.raises(ValueError, match="at least one observation"):
        psi([0, 0], [1, 1])


def test_window_shares_with_missing_values_on_both_sides() -> None:
    # The baseline's bins share what its missing values leave: counts 1 and 1 with half missing are 0.25 each.
    p = {"kind": "numeric", "edges": [0.0, 1.0, 2.0], "counts": [1, 1], "missing": 0.5}
    c = compare(p, [0.5, 1.5, None, 1.7])
    assert c.expected == [0.25, 0.25, 0.5]
    assert c.actual == [0.25, 0.5, 0.25]
    assert c.labels == ["[-inf, 1)", "[1, +inf)", "(missing)"]
    assert c.rows == 4
    categorical = {"kind": "categorical", "shares": {"a": 0.5, "b": 0.5}, "other": 0.0, "missing": 0.0}
    c = compare(categorical, ["a", None, None, "b"])
    assert c.actual == [0.25, 0.25, 0.0, 0.5]
    assert c.rows == 4


def test_a_one_row_window_is_all_of_its_own_shares() -> None:
    assert compare(numeric_profile([1.0, 2.0, 3.0, 4.0], bins=2), [3.5]).actual == [0.0, 1.0, 0.0]
    categorical = {"kind": "categorical", "shares": {"a": 1.0}, "other": 0.0, "missing": 0.0}
    assert compare(categorical, ["a"]).actual == [1.0, 0.0, 0.0]


def test_a_baseline_with_only_missing_values_compares_the_missing_share() -> None:
    p = numeric_profile([None, None])
    assert p["edges"] == []
    c = compare(p, [1.0, None])
    assert c.expected == [1.0]
    assert c.actual == [0.5]
    assert c.labels == ["(missing)"]
