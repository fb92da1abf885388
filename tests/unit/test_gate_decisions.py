"""The acceptance gate's decisions, one rule at a time: which version it lets through, which it blocks, and what
its verdict says why, and the pre-traffic hook around it (what it reports to CodeDeploy, and that it fails closed).

A version here is a toy: a callable answering API Gateway proxy events as the inference function does (its
x-model-version and Server-Timing headers, its ``{"error": ...}`` bodies), whose model doubles its input. The gate
only sees answers, so every decision can be driven by choosing them; the gate on real models through the real
handler is tests/functional/test_acceptance.py. Lambda's GetAlias and Invoke are checked against botocore's model
of the Lambda API, CodeDeploy is botocore's Stubber.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from functions.acceptance import pretraffic
from functions.acceptance.codedeploy import MIN_CALL_SECONDS, Deadline
from functions.acceptance.criteria import AcceptanceCriteria, ReplaySettings
from functions.acceptance.gate import (
    AcceptanceCase,
    AcceptanceSetError,
    CriterionResult,
    Unanswered,
    Verdict,
    evaluate,
    output_differences,
    output_kind,
    outputs_match,
    parse_cases,
    signature_differences,
)
from functions.acceptance.replay import Unavailable
from tests.utils import Context

SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
}
PLENTY = 600.0  # seconds left: more than any test needs


def response(status: int, document: dict[str, Any], *, ms: float | None = None, version: str = "2") -> dict[str, Any]:
    headers = {"content-type": "application/json", "x-model-version": version}
    if ms is not None:
        headers["server-timing"] = f"model;dur=0.5, total;dur={ms}"
    return {"statusCode": status, "headers": headers, "body": json.dumps(document)}


Reply = Callable[[int, list[Any]], "dict[str, Any] | None"]


class Version:
    """One version of the toy model ``toy``: y = 2x, answered in ``ms`` (its Server-Timing total). ``reply(n, x)``
    may answer the n-th inference (from 1) otherwise; ``load_error``: the version cannot load its model (503)."""

    def __init__(
        self,
        version: str = "2",
        *,
        signature: dict[str, Any] | None = None,
        load_error: str = "",
        reply: Reply | None = None,
        ms: float = 2.0,
    ) -> None:
        self.version = version
        self.signature = signature or SIGNATURE
        self.load_error = load_error
        self.reply = reply
        self.ms = ms
        self.metadata_requests = 0
        self.requests: list[list[Any]] = []  # each inference's x, in order

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        route = (event["httpMethod"], event["path"])  # as API Gateway spells them: the method upper-case
        if route == ("GET", "/v2/models/toy"):
            self.metadata_requests += 1
            if self.load_error:
                return response(503, {"error": self.load_error}, version=self.version)
            return response(200, {"name": "toy", "versions": [self.version], **self.signature}, version=self.version)
        if route != ("POST", "/v2/models/toy/infer"):
            return response(404, {"error": f"no route {route}"}, version=self.version)
        x = json.loads(event["body"])["inputs"][0]["data"]
        self.requests.append(x)
        answer = self.reply(len(self.requests), x) if self.reply else None
        if answer is not None:
            return answer
        outputs = [{"name": "y", "datatype": "FP32", "shape": [1, len(x)], "data": [2 * v for v in x]}]
        return response(200, {"model_name": "toy", "outputs": outputs}, ms=self.ms, version=self.version)


def case(line: int, x: list[float], y: list[float] | None = None) -> AcceptanceCase:
    return AcceptanceCase(
        [{"name": "x", "shape": [1, len(x)], "datatype": "FP32", "data": x}],
        {"y": [2 * v for v in x] if y is None else y},
        line,
    )


def cases(n: int) -> list[AcceptanceCase]:
    return [case(line, [float(line), float(line) + 0.5]) for line in range(1, n + 1)]


def error(status: int, message: str) -> dict[str, Any]:
    return response(status, {"error": message}, ms=1.0)


def run(
    version: Version,
    acceptance: list[AcceptanceCase],
    *,
    baseline: dict[str, Any] | Unanswered | None = None,
    seconds_left: Callable[[], float] | None = None,
    replay_records: Any = None,
    **criteria: Any,
) -> Verdict:
    return evaluate(
        "toy",
        version,
        acceptance,
        AcceptanceCriteria(**{"probe_requests": 4, **criteria}),
        baseline_metadata=baseline,
        seconds_left=seconds_left,
        replay_records=replay_records,
    )


def row(verdict: Verdict, name: str) -> CriterionResult:
    return next(c for c in verdict.criteria if c.name == name)


def until(version: Version, requests: int) -> Callable[[], float]:
    """A clock for ``seconds_left`` on which time runs out once ``version`` has had ``requests`` inferences."""
    return lambda: PLENTY if len(version.requests) < requests else MIN_CALL_SECONDS - 0.1


# --- evaluate: the verdict, criterion by criterion --------------------------------------------------------------


def test_a_right_version_passes_and_its_verdict_says_what_was_measured() -> None:
    version = Version()
    verdict = run(version, cases(2), baseline=SIGNATURE)

    assert verdict.passed
    assert (verdict.model, verdict.version, verdict.failing()) == ("toy", "2", [])
    assert verdict.criteria == [
        CriterionResult("model serves", True, "HTTP 200", "HTTP 200", ""),
        CriterionResult("signature", True, "compatible", "compatible", ""),
        CriterionResult("acceptance set", True, "2/2 correct (100.0%)", ">= 100.0%", ""),
        CriterionResult("finite outputs", True, "0 response(s) with NaN/Inf", "0"),
        CriterionResult("error responses", True, "0", "<= 0", ""),
        CriterionResult("p99 latency", True, "2.00 ms over 4 requests", "<= 250 ms", "p50 2.00 ms"),
    ]
    # the cases first, then the latency probe sends the cases again, in turn, up to probe_requests
    assert version.requests == [[1.0, 1.5], [2.0, 2.5], [1.0, 1.5], [2.0, 2.5]]
    assert version.metadata_requests == 1


def test_a_version_that_cannot_load_fails_first_and_is_sent_nothing_else() -> None:
    version = Version(load_error="onnxruntime cannot load model.onnx: INVALID_PROTOBUF")
    verdict = run(version, cases(2), baseline=SIGNATURE)

    assert not verdict.passed
    assert verdict.version == "?"  # a 503 names no version
    assert verdict.criteria == [
        CriterionResult(
            "model serves", False, "HTTP 503", "HTTP 200", "onnxruntime cannot load model.onnx: INVALID_PROTOBUF"
        )
    ]
    assert version.requests == []


def test_a_gate_without_time_for_one_request_fails_without_calling() -> None:
    version = Version()
    verdict = run(version, cases(2), seconds_left=lambda: MIN_CALL_SECONDS - 0.1)

    assert not verdict.passed
    assert (verdict.model, verdict.version) == ("toy", "?")  # the model is named, its version was not asked
    assert verdict.criteria == [
        CriterionResult("model serves", False, "not asked", "HTTP 200", "ran out of time before the first request")
    ]
    assert (version.metadata_requests, version.requests) == (0, [])


def test_a_call_is_started_with_exactly_the_minimum_time_left() -> None:
    version = Version()
    verdict = run(version, cases(2), seconds_left=lambda: MIN_CALL_SECONDS)
    assert verdict.passed, verdict.table()
    assert len(version.requests) == 4


WIDER = {**SIGNATURE, "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]}


@pytest.mark.parametrize(
    ("baseline", "breaking_change", "expected"),
    [
        (SIGNATURE, False, CriterionResult("signature", True, "compatible", "compatible", "")),
        (None, False, CriterionResult("signature", True, "no previous version", "compatible")),
        (WIDER, True, CriterionResult("signature", True, "breaking change declared", "compatible")),
        (
            WIDER,
            False,
            CriterionResult(
                "signature",
                False,
                "1 change(s)",
                "compatible",
                "input 'x' changed datatype FP64 -> FP32 (declare acceptance.breaking_change if intended)",
            ),
        ),
        (
            {**WIDER, "inputs": [*WIDER["inputs"], {"name": "z", "datatype": "FP32", "shape": [-1]}]},
            False,
            CriterionResult(
                "signature",
                False,
                "2 change(s)",
                "compatible",
                "input 'x' changed datatype FP64 -> FP32; input 'z' was removed "
                "(declare acceptance.breaking_change if intended)",
            ),
        ),
        (
            Unanswered(503, "onnxruntime cannot load"),
            False,
            CriterionResult(
                "signature",
                False,
                "replaced version's signature unknown",
                "compatible",
                "the replaced version answered its metadata request with HTTP 503: onnxruntime cannot load "
                "(declare acceptance.breaking_change to deploy without the check)",
            ),
        ),
    ],
    ids=["same", "first-deploy", "declared", "changed", "two-changes", "replaced-unanswered"],
)
def test_the_signature_is_judged_against_the_replaced_version(
    baseline: Any, breaking_change: bool, expected: CriterionResult
) -> None:
    verdict = run(Version(), cases(2), baseline=baseline, breaking_change=breaking_change)
    assert row(verdict, "signature") == expected
    assert verdict.failing() == ([] if expected.passed else ["signature"])


def two_of_four_wrong_from(wrong_from: int) -> list[AcceptanceCase]:
    return [case(line, [float(line)], None if line < wrong_from else [0.5]) for line in range(1, 5)]


@pytest.mark.parametrize(("min_pass_rate", "passed"), [(0.75, True), (0.76, False)])
def test_the_pass_rate_is_met_at_its_threshold(min_pass_rate: float, passed: bool) -> None:
    verdict = run(Version(), two_of_four_wrong_from(4), min_pass_rate=min_pass_rate)
    assert row(verdict, "acceptance set") == CriterionResult(
        "acceptance set",
        passed,
        "3/4 correct (75.0%)",
        f">= {min_pass_rate:.1%}",
        '{"line": 4, "expected": {"y": [0.5]}, "got": {"y": [8.0]}}',
    )
    assert verdict.failing() == ([] if passed else ["acceptance set"])


def test_a_verdict_shows_the_first_three_wrong_cases() -> None:
    acceptance = [case(line, [float(line)], [-1.0]) for line in range(1, 6)]
    verdict = run(Version(), acceptance, min_pass_rate=0)
    assert verdict.passed  # min_pass_rate 0: wrong answers are reported, not held against the version
    assert row(verdict, "acceptance set").measured == "0/5 correct (0.0%)"
    assert [json.loads(line)["line"] for line in row(verdict, "acceptance set").detail.splitlines()] == [1, 2, 3]


def test_a_case_is_wrong_when_an_expected_output_is_missing() -> None:
    missing = AcceptanceCase(case(1, [1.0]).inputs, {"y": [2.0], "label": ["a"]}, 1)
    verdict = run(Version(), [missing, case(2, [2.0])])
    assert row(verdict, "acceptance set").measured == "1/2 correct (50.0%)"
    assert json.loads(row(verdict, "acceptance set").detail) == {
        "line": 1,
        "expected": {"y": [2.0], "label": ["a"]},
        "got": {"y": [2.0], "label": None},
    }


@pytest.mark.parametrize(
    ("document", "got"),
    [({"outputs": [{"name": "y"}]}, {"y": []}), ({"model_name": "toy"}, {"y": None})],
    ids=["output-without-data", "no-outputs"],
)
def test_an_answer_without_the_outputs_is_a_wrong_answer_not_a_crash(document: dict[str, Any], got: Any) -> None:
    verdict = run(Version(reply=lambda n, x: response(200, document, ms=1.0)), [case(1, [1.0])])
    assert verdict.failing() == ["acceptance set"]
    assert json.loads(row(verdict, "acceptance set").detail) == {"line": 1, "expected": {"y": [2.0]}, "got": got}


def test_a_case_is_right_only_when_every_expected_output_matches() -> None:
    two = {**SIGNATURE, "outputs": [*SIGNATURE["outputs"], {"name": "label", "datatype": "BYTES", "shape": [-1]}]}

    def labelled(n: int, x: list[Any]) -> dict[str, Any]:
        outputs = [{"name": "y", "data": [2 * v for v in x]}, {"name": "label", "data": ["b" if n == 1 else "a"]}]
        return response(200, {"outputs": outputs}, ms=1.0)

    acceptance = [AcceptanceCase(case(n, [1.0]).inputs, {"y": [2.0], "label": ["a"]}, n) for n in (1, 2)]
    verdict = run(Version(signature=two, reply=labelled), acceptance)
    assert row(verdict, "acceptance set").measured == "1/2 correct (50.0%)"  # case 1: y right, label wrong
    assert verdict.failing() == ["acceptance set"]


def test_no_acceptance_set_fails_unless_the_pass_rate_asks_for_none() -> None:
    version = Version(signature={**SIGNATURE, "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]})
    verdict = run(version, [])
    assert row(verdict, "acceptance set") == CriterionResult(
        "acceptance set",
        False,
        "no acceptance set",
        ">= 100.0%",
        "add acceptance.jsonl to the bundle (or set acceptance.min_pass_rate 0)",
    )
    assert verdict.failing() == ["acceptance set"]
    # the latency probe still runs, on a one-row request made from the signature
    assert version.requests == [[0, 0, 0]] * 4
    assert run(Version(), [], min_pass_rate=0).passed


@pytest.mark.parametrize("min_pass_rate", [1.0, 0.0])
def test_a_set_cut_short_by_the_deadline_fails_whatever_the_pass_rate(min_pass_rate: float) -> None:
    version = Version()
    acceptance = [*cases(1), case(2, [2.0], [9.0]), *cases(4)[2:]]
    verdict = run(version, acceptance, seconds_left=until(version, 2), min_pass_rate=min_pass_rate)

    assert not verdict.passed
    assert verdict.failing() == ["acceptance set"]
    assert row(verdict, "acceptance set") == CriterionResult(
        "acceptance set",
        False,
        "1/4 correct, 2 not run",
        f">= {min_pass_rate:.1%}",
        'ran out of time after 2 of 4 cases\n{"line": 2, "expected": {"y": [9.0]}, "got": {"y": [4.0]}}',
    )
    assert len(version.requests) == 2  # no latency probe after a set cut short
    assert row(verdict, "p99 latency").measured == "2.00 ms over 2 requests"


def test_a_gate_that_runs_out_before_the_first_case_has_no_latency_to_pass() -> None:
    version = Version()
    after_metadata = lambda: PLENTY if version.metadata_requests == 0 else MIN_CALL_SECONDS - 0.1  # noqa: E731
    verdict = run(version, cases(2), seconds_left=after_metadata, min_pass_rate=0)
    assert version.metadata_requests == 1
    assert row(verdict, "p99 latency") == CriterionResult(
        "p99 latency", False, "inf ms over 0 requests", "<= 250 ms", ""
    )
    assert "p99 latency" in verdict.failing()


def test_a_probe_cut_short_says_so_and_judges_what_it_measured() -> None:
    version = Version()
    verdict = run(version, cases(2), seconds_left=until(version, 3), probe_requests=6)
    assert len(version.requests) == 3
    assert row(verdict, "p99 latency") == CriterionResult(
        "p99 latency", True, "2.00 ms over 3 requests (cut short)", "<= 250 ms", "p50 2.00 ms"
    )
    assert row(verdict, "acceptance set").passed


def test_error_answers_count_in_the_set_and_in_the_probe() -> None:
    def answers(n: int, x: list[Any]) -> dict[str, Any] | None:
        if n == 2:
            return error(400, "input 'x' expected FP32")
        if n == 4:
            return error(500, "model 'toy' version 2 produced 1 non-finite value(s) (NaN/Inf)")
        return None

    verdict = run(Version(reply=answers), cases(3), min_pass_rate=0, max_error_responses=2, probe_requests=5)
    assert row(verdict, "error responses") == CriterionResult(
        "error responses",
        True,
        "2",
        "<= 2",
        "line 2: HTTP 400 input 'x' expected FP32; "
        "probe: HTTP 500 model 'toy' version 2 produced 1 non-finite value(s) (NaN/Inf)",
    )
    assert row(verdict, "finite outputs") == CriterionResult("finite outputs", False, "1 response(s) with NaN/Inf", "0")
    assert row(verdict, "acceptance set").measured == "2/3 correct (66.7%)"  # an error answer is not a right one
    assert verdict.failing() == ["finite outputs"]

    one_allowed = run(Version(reply=answers), cases(3), min_pass_rate=0, max_error_responses=1, probe_requests=5)
    assert one_allowed.failing() == ["finite outputs", "error responses"]


def test_non_finite_answers_in_the_set_fail_finite_outputs() -> None:
    def nan(n: int, x: list[Any]) -> dict[str, Any] | None:
        return error(500, "produced 2 non-finite value(s) (NaN/Inf)") if n == 1 else None

    verdict = run(Version(reply=nan), cases(2), min_pass_rate=0, max_error_responses=5)
    assert row(verdict, "finite outputs").measured == "1 response(s) with NaN/Inf"
    assert row(verdict, "error responses").detail == "line 1: HTTP 500 produced 2 non-finite value(s) (NaN/Inf)"
    assert verdict.failing() == ["finite outputs"]

    every = run(Version(reply=lambda n, x: nan(1, x)), cases(3), min_pass_rate=0, max_error_responses=9)
    assert row(every, "finite outputs").measured == "4 response(s) with NaN/Inf"  # three cases, one probe


def test_an_error_answer_that_is_not_non_finite_is_not_counted_as_one() -> None:
    verdict = run(Version(reply=lambda n, x: error(503, "busy") if n == 1 else None), cases(2), min_pass_rate=0)
    assert row(verdict, "finite outputs").passed
    assert verdict.failing() == ["error responses"]


def test_only_the_first_three_errors_are_listed() -> None:
    verdict = run(Version(reply=lambda n, x: error(400, f"bad {n}")), cases(2), min_pass_rate=0, probe_requests=4)
    assert row(verdict, "error responses").measured == "4"
    assert (
        row(verdict, "error responses").detail
        == "line 1: HTTP 400 bad 1; line 2: HTTP 400 bad 2; probe: HTTP 400 bad 3"
    )


@pytest.mark.parametrize(
    ("times", "budget", "passed", "p99"),
    [
        ([1.0] * 50 + [4.0] * 50, 4.0, True, "4.00"),  # at the budget: within it
        ([1.0] * 50 + [4.0] * 50, 3.99, False, "4.00"),
        ([1.0] * 50 + [4.0] * 49 + [9.0], 5.0, True, "4.05"),  # the 99th percentile (numpy's linear), not the max
    ],
)
def test_p99_latency_is_the_function_time_against_the_budget(
    times: list[float], budget: float, passed: bool, p99: str
) -> None:
    answer_ms = iter(times)  # 100 requests: the 2 cases and 98 of the probe
    version = Version()
    version.reply = lambda n, x: response(
        200, {"outputs": [{"name": "y", "data": [2 * v for v in x]}]}, ms=next(answer_ms)
    )
    verdict = run(version, cases(2), probe_requests=100, latency_budget_ms=budget)
    assert row(verdict, "p99 latency") == CriterionResult(
        "p99 latency", passed, f"{p99} ms over 100 requests", f"<= {budget:g} ms", "p50 2.50 ms"
    )
    assert verdict.failing() == ([] if passed else ["p99 latency"])


def test_without_server_timing_the_latency_is_the_time_the_call_took() -> None:
    plain = {"statusCode": 200, "headers": {"content-type": "application/json"}}
    version = Version()
    version.reply = lambda n, x: {**plain, "body": json.dumps({"outputs": [{"name": "y", "data": [2 * v for v in x]}]})}
    verdict = run(version, cases(2), latency_budget_ms=50)
    assert verdict.passed, verdict.table()  # an in-process call takes well under 50 ms
    assert row(verdict, "p99 latency").measured.endswith(" ms over 4 requests")


def y(value: float) -> dict[str, Any]:
    """An output tensor as capture records it (functions/acceptance/capture.py)."""
    return {"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [value]}


def test_without_replay_records_the_verdict_has_no_replay() -> None:
    assert [c.name for c in run(Version(), cases(1)).criteria][-1] == "p99 latency"


def test_nothing_to_replay_is_said_in_the_verdict() -> None:
    verdict = run(Version(), cases(1), replay_records=Unavailable("first deploy: nothing captured"))
    assert row(verdict, "replay").passed
    assert row(verdict, "replay").measured == "skipped: first deploy: nothing captured"


def test_a_declared_breaking_change_does_not_replay_requests_of_the_old_signature() -> None:
    records = [{"inputs": case(n, [float(n)]).inputs, "outputs": [y(0.0)]} for n in range(30)]
    version = Version()
    verdict = run(version, cases(1), baseline=WIDER, breaking_change=True, replay_records=records)
    assert row(verdict, "replay").measured == (
        "skipped: breaking change declared: captured requests fit the old signature"
    )
    assert len(version.requests) == 4  # the case and the probe; no captured request sent
    # a reason there is nothing to replay already is kept, and a replay that could not read still fails
    failed = Unavailable("could not read captured requests", fail=True)
    verdict = run(Version(), cases(1), breaking_change=True, replay_records=failed)
    assert row(verdict, "replay") == CriterionResult(
        "replay", False, "not replayed", ">= 20 captured requests", "could not read captured requests"
    )
    assert verdict.failing() == ["replay"]


def captured(n: int) -> list[dict[str, Any]]:
    """``n`` requests as the replaced version answered them (y = 2x, as the toy's new version does)."""
    return [{"inputs": case(i, [float(i)]).inputs, "outputs": [y(2.0 * i)]} for i in range(n)]


def test_replayed_records_that_agree_pass_the_gate() -> None:
    version = Version()
    verdict = run(version, cases(1), probe_requests=1, replay_records=captured(30))
    assert verdict.passed, verdict.table()
    assert row(verdict, "replay").measured == "30 requests (30 rows) replayed of the newest 30 captured"
    assert version.requests[1:] == [[float(i)] for i in range(30)]  # each captured request, to the new version


def test_the_replay_keeps_to_the_deadline_and_fails_when_cut_short() -> None:
    version = Version()
    verdict = run(version, cases(1), probe_requests=1, replay_records=captured(30), seconds_left=until(version, 5))
    assert len(version.requests) == 5  # the case, then four captured requests
    assert row(verdict, "replay") == CriterionResult(
        "replay",
        False,
        "4 requests (4 rows) replayed of the newest 30 captured (cut short)",
        ">= 20 captured requests, all replayed",
        "ran out of time after 4 of 30 requests",
    )
    assert verdict.failing() == ["replay"]


def test_replayed_records_that_disagree_fail_the_gate() -> None:
    records = [{"inputs": case(n, [float(n)]).inputs, "outputs": [y(-5.0)]} for n in range(30)]
    verdict = run(Version(), cases(1), replay_records=records)
    assert not verdict.passed
    assert any(name.startswith("replay") for name in verdict.failing()), verdict.table()


# --- the verdict's own rule ----------------------------------------------------------------------------------------


def test_informational_rows_never_decide_the_verdict() -> None:
    verdict = Verdict("toy", "2")
    verdict.criteria += [
        CriterionResult("a", True, "", ""),
        CriterionResult("psi", False, "", "", informational=True),
        CriterionResult("b", True, "", ""),
    ]
    assert verdict.passed
    assert verdict.failing() == []
    verdict.criteria += [CriterionResult("c", False, "", ""), CriterionResult("d", False, "", "")]
    assert not verdict.passed
    assert verdict.failing() == ["c", "d"]


# --- outputs_match: what counts as the expected answer --------------------------------------------------------------


@pytest.mark.parametrize(
    ("got", "want", "matches"),
    [
        ([1, 2], [1, 2], True),
        ([1], [1, 2], False),
        ([1, 2], [1], False),
        ([1, 3], [1, 2], False),  # labels exactly
        (["setosa"], ["setosa"], True),
        (["setosa"], ["virginica"], False),
        ([0.10005], [0.1], True),  # within atol 1e-4
        ([0.1003], [0.1], False),
        ([1000.9], [1000.0], True),  # within rtol 1e-3 of the larger
        ([1001.2], [1000.0], False),
        ([2], [2.0], True),  # an integer answer to a float expectation is compared as a number
        ([2.0], [2], True),
        ([True], [1.0], False),  # a boolean is not a number here
        (["1.0"], [1.0], False),
        ([None], [1.0], False),
        ([{"0": 0.9, "1": 0.1}], [{0: 0.9, 1: 0.1}], True),  # ZipMap rows: keys compared as text
        ([{"1": 0.1, "0": 0.9}], [{"0": 0.9, "1": 0.1}], True),
        ([{"0": 0.9}], [{"0": 0.9, "1": 0.1}], False),
        ([{"0": 0.9, "1": 0.1, "2": 0.0}], [{"0": 0.9, "1": 0.1}], False),
        ([{"0": 0.5, "1": 0.5}], [{"0": 0.9, "1": 0.1}], False),
        ([{"0": 0.9, "1": 0.1}, {"0": 0.5, "1": 0.5}], [{"0": 0.9, "1": 0.1}, {"0": 0.9, "1": 0.1}], False),
        ([0.9], [{"0": 0.9}], False),
    ],
)
def test_outputs_match(got: list[Any], want: list[Any], matches: bool) -> None:
    assert outputs_match(got, want, atol=1e-4, rtol=1e-3) is matches


# --- signature_differences: what breaks the replaced version's clients ------------------------------------------------


def tensor(name: str, datatype: str = "FP32", shape: list[int] | None = None, onnx_type: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [-1, 3] if shape is None else shape}
    if onnx_type:
        spec["parameters"] = {"onnx_type": onnx_type}
    return spec


def signature(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"inputs": inputs, "outputs": outputs or []}


@pytest.mark.parametrize(
    ("old", "new", "problems"),
    [
        ([tensor("x")], [tensor("x")], []),
        ([tensor("x"), tensor("z")], [tensor("x")], ["input 'z' was removed"]),
        ([tensor("x")], [tensor("x"), tensor("z")], ["new required input 'z'"]),
        ([tensor("x")], [tensor("x", "FP64")], ["input 'x' changed datatype FP32 -> FP64"]),
        ([tensor("x")], [tensor("x", shape=[-1, 3, 1])], ["input 'x' changed rank [-1, 3] -> [-1, 3, 1]"]),
        ([tensor("x")], [tensor("x", shape=[-1, 4])], ["input 'x' dimension 1 3 -> 4"]),
        ([tensor("x")], [tensor("x", shape=[8, 3])], ["input 'x' dimension 0 -1 -> 8"]),  # old requests of 2 rows
        ([tensor("x")], [tensor("x", shape=[-1, -1])], []),  # a dimension made free accepts every old request
        (
            [tensor("b"), tensor("a")],
            [tensor("b", "INT64"), tensor("a", shape=[-1, 2]), tensor("c")],
            ["input 'a' dimension 1 3 -> 2", "input 'b' changed datatype FP32 -> INT64", "new required input 'c'"],
        ),
    ],
)
def test_signature_differences_of_inputs(old: list[Any], new: list[Any], problems: list[str]) -> None:
    assert signature_differences(signature(old), signature(new)) == problems


def test_signature_differences_include_the_outputs_sorted() -> None:
    old = signature([tensor("x"), tensor("w")], [tensor("y"), tensor("p")])
    new = signature([tensor("x")], [tensor("y", "FP64")])
    assert signature_differences(old, new) == [
        "input 'w' was removed",
        "output 'p' was removed",
        "output 'y' changed datatype FP32 -> FP64",
    ]


ZIPMAP = "seq(map(int64,tensor(float)))"


@pytest.mark.parametrize(
    ("old", "new", "problems"),
    [
        ([tensor("y")], [tensor("y")], []),
        ([tensor("y")], [tensor("y"), tensor("z")], []),  # a new output breaks nobody
        ([tensor("y"), tensor("p")], [tensor("y")], ["output 'p' was removed"]),
        ([tensor("y")], [tensor("y", "INT64")], ["output 'y' changed datatype FP32 -> INT64"]),
        ([tensor("y")], [tensor("y", shape=[-1])], ["output 'y' changed rank [-1, 3] -> [-1]"]),
        ([tensor("y")], [tensor("y", shape=[-1, 4])], ["output 'y' dimension 1 3 -> 4"]),
        ([tensor("y", shape=[-1, -1])], [tensor("y", shape=[5, 4])], []),  # clients read a free width as it comes
        ([tensor("y", shape=[2, 3])], [tensor("y", shape=[-1, 3])], ["output 'y' dimension 0 2 -> -1"]),
        (
            [tensor("p", "BYTES", [-1], ZIPMAP)],
            [tensor("p", "FP32", [-1, 3])],
            [f"output 'p' changed kind sequence of maps ({ZIPMAP}) -> tensor (FP32)"],
        ),
        (
            [tensor("p", "FP32", [-1, 3])],
            [tensor("p", "BYTES", [-1], ZIPMAP)],
            [f"output 'p' changed kind tensor (FP32) -> sequence of maps ({ZIPMAP})"],
        ),
        (
            [tensor("p", "BYTES", [-1], ZIPMAP)],
            [tensor("p", "BYTES", [-1], "seq(map(string,tensor(float)))")],
            [f"output 'p' changed type {ZIPMAP} -> seq(map(string,tensor(float)))"],
        ),
        ([tensor("p", "BYTES", [-1], ZIPMAP)], [tensor("p", "JSON", [-1, 2], ZIPMAP)], []),  # same type: same maps
    ],
)
def test_output_differences(old: list[Any], new: list[Any], problems: list[str]) -> None:
    assert output_differences(signature([], old), signature([], new)) == problems


def test_a_signature_without_outputs_has_nothing_to_break() -> None:
    assert output_differences({"inputs": []}, {"inputs": []}) == []
    assert signature_differences({}, {}) == []


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"name": "y"}, "tensor"),
        ({"name": "y", "parameters": None}, "tensor"),
        ({"name": "y", "parameters": {"onnx_type": ""}}, "tensor"),
        ({"name": "y", "parameters": {"onnx_type": ZIPMAP}}, "sequence of maps"),
        ({"name": "y", "parameters": {"onnx_type": "seq(tensor(float))"}}, "sequence"),
        ({"name": "y", "parameters": {"onnx_type": "map(int64,tensor(float))"}}, "map"),
        ({"name": "y", "parameters": {"onnx_type": "optional(tensor(float))"}}, "optional(tensor(float))"),
    ],
)
def test_output_kind(spec: dict[str, Any], kind: str) -> None:
    assert output_kind(spec) == kind


# --- parse_cases: the acceptance set as the bundle ships it -----------------------------------------------------


def test_parse_cases_keeps_the_file_line_of_each_case() -> None:
    text = '\n{"inputs": [{"name": "x"}], "expected": {"y": [1]}}\n   \n{"inputs": []}\n'
    assert parse_cases(text) == [AcceptanceCase([{"name": "x"}], {"y": [1]}, 2), AcceptanceCase([], {}, 4)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "set.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes)"),
        ("[1, 2]", 'set.jsonl:2: expected {"inputs": [...], "expected": {...}}'),
        ('{"expected": {"y": [1]}}', 'set.jsonl:2: expected {"inputs": [...], "expected": {...}}'),
        ('{"inputs": {"x": 1}}', 'set.jsonl:2: expected {"inputs": [...], "expected": {...}}'),
        ('{"inputs": [], "expected": [1]}', "set.jsonl:2: 'expected' maps output names to flat arrays of values"),
        ('{"inputs": [], "expected": {"y": 1}}', "set.jsonl:2: 'expected' maps output names to flat arrays of values"),
    ],
    ids=["json", "not-object", "no-inputs", "inputs-not-list", "expected-not-object", "expected-not-arrays"],
)
def test_parse_cases_names_the_line_at_fault(line: str, message: str) -> None:
    with pytest.raises(AcceptanceSetError) as raised:
        parse_cases('{"inputs": []}\n' + line + "\n", "set.jsonl")
    assert str(raised.value) == message


def test_parse_cases_names_the_default_file() -> None:
    with pytest.raises(AcceptanceSetError, match=r"^acceptance\.jsonl:1: "):
        parse_cases("nope")


# --- the pre-traffic hook around the gate -------------------------------------------------------------------------

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:modelrail-production-toy"
HOOK_EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "hook-1"}
_LAMBDA_API = botocore.session.get_session().get_service_model("lambda")


class Lambda:
    """Lambda's GetAlias and Invoke for toy versions, each call validated against botocore's model of the Lambda
    API. ``alias``: the version the alias serves; None: the alias does not exist yet (a first deploy)."""

    def __init__(self, versions: dict[str, Version], alias: str | None, alias_name: str = "live") -> None:
        self.versions = versions
        self.alias = alias
        self.alias_name = alias_name
        self.invoked: list[str] = []

    def get_alias(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, _LAMBDA_API.operation_model("GetAlias").input_shape)
        assert (params["FunctionName"], params["Name"]) == (FUNCTION_ARN, self.alias_name), params
        if self.alias is None:
            error = {"Code": "ResourceNotFoundException", "Message": f"Alias not found: {params['Name']}"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetAlias")
        return {"Name": params["Name"], "FunctionVersion": self.alias}

    def invoke(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, _LAMBDA_API.operation_model("Invoke").input_shape)
        function, _, qualifier = params["FunctionName"].rpartition(":")
        assert function == FUNCTION_ARN, params["FunctionName"]
        self.invoked.append(qualifier)
        answer = self.versions[qualifier](json.loads(params["Payload"]))
        return {"StatusCode": 200, "ExecutedVersion": qualifier, "Payload": io.BytesIO(json.dumps(answer).encode())}


def acceptance_s3(body: bytes, uri_key: str = "acceptance/toy.jsonl") -> tuple[Any, Stubber]:
    """An S3 client that answers one GetObject of s3://bucket/<uri_key> with ``body``."""
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    stubber.add_response(
        "get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))}, {"Bucket": "bucket", "Key": uri_key}
    )
    stubber.activate()
    return s3, stubber


def environment(**extra: str) -> dict[str, str]:
    return {"NEW_VERSION_ARN": f"{FUNCTION_ARN}:2", "MODEL_NAME": "toy", **extra}


def acceptance_set(n: int) -> bytes:
    return "".join(json.dumps({"inputs": c.inputs, "expected": c.expected}) + "\n" for c in cases(n)).encode()


def sha256(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def test_the_gate_judges_the_new_version_against_the_one_the_alias_serves() -> None:
    old = Version("1", signature=WIDER)
    new = Version("2")
    lambda_client = Lambda({"1": old, "2": new}, alias="1")
    body = acceptance_set(2)
    s3, stubber = acceptance_s3(body)
    environ = environment(
        ACCEPTANCE_URI="s3://bucket/acceptance/toy.jsonl",
        ACCEPTANCE_SHA256=sha256(body),
        ACCEPTANCE_CRITERIA=json.dumps({"probe_requests": 3}),
    )

    verdict = pretraffic.run_gate(environ, {"lambda": lambda_client, "s3": s3})

    stubber.assert_no_pending_responses()
    assert verdict.failing() == ["signature"]  # version 1's signature is the baseline
    assert row(verdict, "acceptance set").measured == "2/2 correct (100.0%)"  # the set from S3, on version 2
    assert row(verdict, "p99 latency").measured == "2.00 ms over 3 requests"  # the bundle's criteria
    assert (old.metadata_requests, old.requests) == (1, [])  # the replaced version is only asked its signature
    assert len(new.requests) == 3
    # captured requests are replayed only from a capture bucket: here there is none, and that is said
    assert row(verdict, "replay").measured.startswith("skipped: data capture is off in this environment")


def test_the_gate_replays_what_the_replaced_version_captured() -> None:
    lambda_client = Lambda({"1": Version("1"), "2": Version()}, alias="1")
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    prefix = "capture/model=toy/version=1/"  # the replaced version's captured requests, not the new one's
    stubber.add_response(
        "list_objects_v2", {"CommonPrefixes": []}, {"Bucket": "captures", "Prefix": prefix, "Delimiter": "/"}
    )
    stubber.activate()
    criteria = {"min_pass_rate": 0, "probe_requests": 1, "replay": {"lookback_hours": 3}}
    environ = environment(CAPTURE_BUCKET="captures", ACCEPTANCE_CRITERIA=json.dumps(criteria))

    verdict = pretraffic.run_gate(environ, {"lambda": lambda_client, "s3": s3}, Deadline(lambda: 600_000, 15.0))

    stubber.assert_no_pending_responses()
    assert row(verdict, "replay").measured == (
        f"skipped: no captured requests of version 1 in the last 3 h (s3://captures/{prefix}): nothing to replay"
    )
    assert verdict.passed, verdict.table()


def test_the_gate_reads_the_alias_the_environment_names() -> None:
    lambda_client = Lambda({"1": Version("1", signature=WIDER), "2": Version()}, alias="1", alias_name="prod")
    environ = environment(ALIAS_NAME="prod", ACCEPTANCE_CRITERIA=json.dumps({"min_pass_rate": 0, "probe_requests": 1}))
    assert pretraffic.run_gate(environ, {"lambda": lambda_client}).failing() == ["signature"]


def test_without_criteria_the_gate_holds_the_defaults() -> None:
    lambda_client = Lambda({"2": Version()}, alias=None)
    verdict = pretraffic.run_gate(environment(), {"lambda": lambda_client})
    assert verdict.failing() == ["acceptance set"]  # min_pass_rate 1.0, and no acceptance set
    assert row(verdict, "p99 latency").measured == "2.00 ms over 60 requests"


@pytest.mark.parametrize("alias", [None, "2", "$LATEST"], ids=["no-alias", "alias-on-new", "alias-on-latest"])
def test_a_first_deploy_has_no_previous_version_to_compare_or_replay(alias: str | None) -> None:
    lambda_client = Lambda({"2": Version()}, alias=alias)
    environ = environment(CAPTURE_BUCKET="captures", ACCEPTANCE_CRITERIA=json.dumps({"min_pass_rate": 0}))
    verdict = pretraffic.run_gate(environ, {"lambda": lambda_client})
    assert verdict.passed, verdict.table()
    assert row(verdict, "signature").measured == "no previous version"
    assert row(verdict, "replay").measured.startswith("skipped: first deploy: no version has served this model")
    assert set(lambda_client.invoked) == {"2"}


def test_an_alias_that_cannot_be_read_is_an_error_not_a_first_deploy() -> None:
    class Denied(Lambda):
        def get_alias(self, **params: Any) -> dict[str, Any]:
            error = {"Code": "AccessDeniedException", "Message": "not authorized to perform lambda:GetAlias"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetAlias")

    with pytest.raises(ClientError, match="AccessDeniedException"):
        pretraffic.run_gate(environment(), {"lambda": Denied({"2": Version()}, alias="1")})


def test_a_deadline_near_its_end_stops_the_gate_before_the_first_request() -> None:
    lambda_client = Lambda({"1": Version("1"), "2": Version()}, alias="1")
    nearly_over = Deadline(lambda: 15_500, reserve_seconds=15.0)  # 0.5 s for work, the rest for the report
    verdict = pretraffic.run_gate(environment(), {"lambda": lambda_client}, nearly_over)
    assert verdict.criteria[0].detail == "ran out of time before the first request"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"CAPTURE_EXCLUDE_INPUTS": " email , ,ssn"},
            "the bundle's capture_exclude_inputs ['email', 'ssn'] are never captured: requests cannot be rebuilt",
        ),
        (
            {"CAPTURE_EXCLUDE_INPUTS": " , "},
            "data capture is off in this environment (monitoring.capture): nothing was captured",
        ),
        ({}, "data capture is off in this environment (monitoring.capture): nothing was captured"),
        ({"CAPTURE_BUCKET": ""}, "data capture is off in this environment (monitoring.capture): nothing was captured"),
    ],
    ids=["excluded-inputs", "blank-exclusions", "no-bucket", "empty-bucket"],
)
def test_why_there_is_nothing_to_replay(environ: dict[str, str], expected: str) -> None:
    records = pretraffic._replay_records(environ, {}, "toy", "1", AcceptanceCriteria(), Deadline(None))
    assert records == Unavailable(expected)


def test_a_capture_that_cannot_be_read_fails_the_replay_closed(caplog: Any) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    stubber.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
    stubber.activate()
    records = pretraffic._replay_records(
        {"CAPTURE_BUCKET": "captures"}, {"s3": s3}, "toy", "1", AcceptanceCriteria(), Deadline(None)
    )
    assert records == Unavailable(  # fail: whatever when_unavailable says
        "could not read captured requests from s3://captures: AccessDenied: An error occurred (AccessDenied) when "
        "calling the ListObjectsV2 operation: Access Denied",
        fail=True,
    )


def test_reading_the_capture_stops_at_the_deadline() -> None:
    """The replay's reading of the capture keeps to the hook's deadline: past it, no further S3 call is started (a
    capture read that outlived the hook would leave CodeDeploy without a status)."""
    from datetime import UTC, datetime

    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    prefix = "capture/model=toy/version=1/"
    hour = f"{prefix}hour={datetime.now(UTC):%Y-%m-%d-%H}/"
    stubber.add_response(
        "list_objects_v2",
        {"CommonPrefixes": [{"Prefix": hour}]},
        {"Bucket": "captures", "Prefix": prefix, "Delimiter": "/"},
    )
    stubber.activate()
    nearly_over = Deadline(lambda: 15_500, reserve_seconds=15.0)
    records = pretraffic._replay_records(
        {"CAPTURE_BUCKET": "captures"}, {"s3": s3}, "toy", "1", AcceptanceCriteria(), nearly_over
    )
    stubber.assert_no_pending_responses()
    assert records == Unavailable(
        f"no captured requests of version 1 in the last 24 h (s3://captures/{prefix}): nothing to replay"
    )


def test_captured_requests_are_read_for_the_replaced_version() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    prefix = "capture/model=toy/version=1/"
    stubber.add_response(
        "list_objects_v2", {"CommonPrefixes": []}, {"Bucket": "captures", "Prefix": prefix, "Delimiter": "/"}
    )
    stubber.activate()
    criteria = AcceptanceCriteria(replay=ReplaySettings(lookback_hours=3))
    records = pretraffic._replay_records(
        {"CAPTURE_BUCKET": "captures"}, {"s3": s3}, "toy", "1", criteria, Deadline(None)
    )
    stubber.assert_no_pending_responses()
    assert isinstance(records, Unavailable)
    assert records.reason == (
        f"no captured requests of version 1 in the last 3 h (s3://captures/{prefix}): nothing to replay"
    )
    assert not records.fail


def test_an_acceptance_set_that_is_not_the_bundle_s_is_refused() -> None:
    body = acceptance_set(1)
    s3, _ = acceptance_s3(body)
    environ = environment(ACCEPTANCE_URI="s3://bucket/acceptance/toy.jsonl", ACCEPTANCE_SHA256="0" * 64)
    expected = f"acceptance set s3://bucket/acceptance/toy.jsonl has sha256 {sha256(body)}, expected {'0' * 64}"
    with pytest.raises(ValueError, match=f"^{expected}$"):
        pretraffic._acceptance_cases(environ, {"s3": s3})


def test_an_acceptance_set_error_names_its_s3_uri() -> None:
    body = b'{"inputs": []}\nnot json\n'
    s3, _ = acceptance_s3(body, "sets/toy.jsonl")
    environ = environment(ACCEPTANCE_URI="s3://bucket/sets/toy.jsonl", ACCEPTANCE_SHA256=sha256(body))
    with pytest.raises(AcceptanceSetError, match=r"^s3://bucket/sets/toy\.jsonl:2: not valid JSON"):
        pretraffic._acceptance_cases(environ, {"s3": s3})


@pytest.mark.parametrize("uri", [None, ""], ids=["unset", "empty"])
def test_no_acceptance_uri_is_no_acceptance_set(uri: str | None) -> None:
    environ = environment() if uri is None else environment(ACCEPTANCE_URI=uri)
    assert pretraffic._acceptance_cases(environ, {"s3": object()}) == []


def codedeploy_expecting(status: str, *, throttles: int = 0) -> tuple[Any, Stubber]:
    """CodeDeploy for the hook: GetDeployment (its AppSpec shifts to version 2), then exactly one
    PutLifecycleEventHookExecutionStatus with ``status`` (after ``throttles`` throttled ones: ThrottlingException,
    HTTP 400, CodeDeploy API Reference, Common Errors). A Lambda hook's outcome is that call, not its return
    value: "Sets the result of a Lambda validation function ... Lambda validation functions return Succeeded or
    Failed" (CodeDeploy API Reference, PutLifecycleEventHookExecutionStatus; the User Guide's sample hook in
    "Create a file for your BeforeAllowTraffic Lambda function" makes it from the event's DeploymentId and
    LifecycleEventHookExecutionId)."""
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    appspec = json.dumps(
        {
            "version": 0.0,
            "Resources": [{"toy": {"Type": "AWS::Lambda::Function", "Properties": {"TargetVersion": "2"}}}],
        }
    )
    stubber.add_response(
        "get_deployment",
        {"deploymentInfo": {"revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec}}}},
        {"deploymentId": "d-ABC123"},
    )
    expected = {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": status}
    for _ in range(throttles):
        stubber.add_client_error(
            "put_lifecycle_event_hook_execution_status",
            "ThrottlingException",
            "Rate exceeded",
            400,
            expected_params=expected,
        )
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": "hook-1"}, expected
    )
    stubber.activate()
    return codedeploy, stubber


@pytest.mark.parametrize(
    ("criteria", "status"),
    [({"min_pass_rate": 0, "probe_requests": 2}, "Succeeded"), ({"probe_requests": 2}, "Failed")],
    ids=["passing", "failing"],
)
def test_the_hook_reports_the_verdict_once(
    monkeypatch: pytest.MonkeyPatch, caplog: Any, criteria: dict[str, Any], status: str
) -> None:
    for key, value in environment(ACCEPTANCE_CRITERIA=json.dumps(criteria)).items():
        monkeypatch.setenv(key, value)
    codedeploy, stubber = codedeploy_expecting(status)
    clients = {"lambda": Lambda({"2": Version()}, alias=None), "codedeploy": codedeploy}

    with caplog.at_level(logging.INFO):
        assert pretraffic.handler(HOOK_EVENT, Context(), clients=clients) == {"status": status}

    stubber.assert_no_pending_responses()
    record = next(r for r in caplog.records if r.getMessage() == "acceptance verdict")
    # the log line operators look for: this deployment's verdict, and what was reported
    assert (record.deployment_id, record.status) == ("d-ABC123", status)  # type: ignore[attr-defined]
    assert record.verdict["passed"] is (status == "Succeeded")  # type: ignore[attr-defined]


def test_a_gate_that_cannot_run_fails_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment(ACCEPTANCE_URI="s3://bucket/acceptance/toy.jsonl").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ACCEPTANCE_SHA256", raising=False)
    body = acceptance_set(1)
    s3, _ = acceptance_s3(body)  # an acceptance set without its digest: not the bundle's
    codedeploy, stubber = codedeploy_expecting("Failed")
    clients = {"lambda": Lambda({"2": Version()}, alias=None), "codedeploy": codedeploy, "s3": s3}
    assert pretraffic.handler(HOOK_EVENT, Context(), clients=clients) == {"status": "Failed"}
    stubber.assert_no_pending_responses()


def test_the_hook_returns_its_status_when_no_codedeploy_client_can_be_made(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no region anywhere: boto3 cannot make the client
    result = pretraffic.handler(HOOK_EVENT, Context(), clients={"lambda": Lambda({"2": Version()}, alias=None)})
    assert result == {"status": "Failed"}


class NearlyOver(Context):
    """A Lambda context with one second left: the hook keeps a fifth of it for its answer, too little for work."""

    def get_remaining_time_in_millis(self) -> int:
        return 1_000


@pytest.mark.parametrize(("context", "status"), [(Context(), "SUCCESS"), (NearlyOver(), "FAILED")])
def test_the_first_deploy_s_gate_keeps_to_the_hook_s_deadline(
    monkeypatch: pytest.MonkeyPatch, context: Context, status: str
) -> None:
    """A CloudFormation custom resource event (the first deploy, no CodeDeploy deployment) runs the same gate
    within the same deadline: "If no response is received before the timeout period ends, the request is
    considered unsuccessful, and the stack operation fails" (CloudFormation User Guide, "CloudFormation custom
    resource request and response reference")."""
    for key, value in environment(ACCEPTANCE_CRITERIA=json.dumps({"min_pass_rate": 0, "probe_requests": 1})).items():
        monkeypatch.setenv(key, value)
    event = {
        "RequestType": "Create",
        "ResponseURL": "unanswerable",  # answered nowhere here: the answer itself is tests/functional/test_hook_faults
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/modelrail-production/0a1b2c3d",
        "RequestId": "5c6d7e8f-request",
        "LogicalResourceId": "FirstDeployGate",
        "ResourceProperties": {"VersionArn": f"{FUNCTION_ARN}:2", "Model": "toy"},
    }
    answer = pretraffic.handler(event, context, clients={"lambda": Lambda({"2": Version()}, alias=None)})
    assert answer["Status"] == status, answer
    if status == "FAILED":
        assert "ran out of time before the first request" in answer["Reason"]


def test_the_hook_judges_within_its_own_deadline(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """With one second left, the gate starts no call and the hook reports Failed at once: the time is the hook's
    Lambda timeout (NearlyOver), and a hook that never reports leaves the deployment waiting on it."""
    for key, value in environment(ACCEPTANCE_CRITERIA=json.dumps({"min_pass_rate": 0, "probe_requests": 1})).items():
        monkeypatch.setenv(key, value)
    codedeploy, stubber = codedeploy_expecting("Failed")
    version = Version()
    clients = {"lambda": Lambda({"2": version}, alias=None), "codedeploy": codedeploy}

    assert pretraffic.handler(HOOK_EVENT, NearlyOver(), clients=clients) == {"status": "Failed"}

    stubber.assert_no_pending_responses()
    assert (version.metadata_requests, version.requests) == (0, [])
    record = next(r for r in caplog.records if r.getMessage() == "acceptance verdict")
    assert record.verdict["criteria"][0]["detail"] == "ran out of time before the first request"  # type: ignore[attr-defined]


def test_a_throttled_report_is_not_retried_past_the_hook_s_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One second left: a throttled report is not tried again (each try may take 5 s, and Lambda stops the hook at
    its timeout, mid-call); the first try is the hook's one chance, and the hook still returns its status."""
    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    codedeploy, _ = codedeploy_expecting("Failed", throttles=1)
    tries: list[str] = []
    codedeploy.meta.events.register(
        "before-parameter-build.codedeploy.PutLifecycleEventHookExecutionStatus", lambda **_: tries.append("put")
    )

    result = pretraffic.handler(HOOK_EVENT, NearlyOver(), clients={"codedeploy": codedeploy, "lambda": object()})

    assert result == {"status": "Failed"}
    assert tries == ["put"]
