"""The acceptance gate: one implementation of the checks, run by the CodeDeploy pre-traffic hook against a new
Lambda version and by ``modelrail validate`` against a local worker, both through API Gateway-shaped events.

Each criterion is measured, compared with its threshold and reported, so a verdict says why a version may
or may not receive traffic.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .codedeploy import MIN_CALL_SECONDS
from .criteria import AcceptanceCriteria
from .events import response_body, response_headers, rest_proxy_event

if TYPE_CHECKING:
    from .replay import Unavailable

Invoker = Callable[[dict[str, Any]], dict[str, Any]]  # API Gateway proxy event -> proxy response
NON_FINITE_MARKER = "non-finite"  # in the inference function's 500 for NaN/Inf outputs
_SERVER_TIMING_TOTAL = re.compile(r"(?:^|,)\s*total;dur=([0-9.]+)")


class AcceptanceSetError(ValueError):
    """The acceptance set cannot be read; the message names the line."""


@dataclass(frozen=True)
class AcceptanceCase:
    inputs: list[dict[str, Any]]
    expected: dict[str, list[Any]]
    line: int


def parse_cases(text: str, source: str = "acceptance.jsonl") -> list[AcceptanceCase]:
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AcceptanceSetError(f"{source}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(case, dict) or not isinstance(case.get("inputs"), list):
            raise AcceptanceSetError(f'{source}:{number}: expected {{"inputs": [...], "expected": {{...}}}}')
        expected = case.get("expected", {})
        if not isinstance(expected, dict) or not all(isinstance(v, list) for v in expected.values()):
            raise AcceptanceSetError(f"{source}:{number}: 'expected' maps output names to flat arrays of values")
        cases.append(AcceptanceCase(case["inputs"], expected, number))
    return cases


@dataclass
class CriterionResult:
    name: str
    passed: bool
    measured: str
    threshold: str
    detail: str = ""
    informational: bool = False  # reported beside the criteria, never decides the verdict


@dataclass
class Verdict:
    model: str
    version: str
    criteria: list[CriterionResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria if not c.informational)

    def failing(self) -> list[str]:
        return [c.name for c in self.criteria if not c.passed and not c.informational]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "passed": self.passed,
            "failing": self.failing(),
            "criteria": [asdict(c) for c in self.criteria],
        }

    def table(self) -> str:
        rows = [("criterion", "measured", "threshold", "result")]
        rows += [
            (c.name, c.measured, c.threshold, "info" if c.informational else "pass" if c.passed else "FAIL")
            for c in self.criteria
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        details = [
            f"  {c.name}: {c.detail}"
            if "\n" not in c.detail
            else f"  {c.name}:\n    " + c.detail.replace("\n", "\n    ")
            for c in self.criteria
            if c.detail and (c.informational or not c.passed)
        ]
        return "\n".join(lines + (["", *details] if details else []))


@dataclass
class _Call:
    status: int
    document: dict[str, Any]
    latency_ms: float

    @property
    def error(self) -> str:
        return str(self.document.get("error", "")) if self.status >= 400 else ""


def _call(invoke: Invoker, method: str, path: str, body: Any = None) -> _Call:
    raw = json.dumps(body).encode() if body is not None else b""
    started = time.perf_counter()
    response = invoke(rest_proxy_event(method, path, {"content-type": "application/json"}, raw))
    client_ms = (time.perf_counter() - started) * 1000
    timing = _SERVER_TIMING_TOTAL.search(response_headers(response).get("server-timing", ""))
    try:
        document = json.loads(response_body(response) or b"{}")
    except ValueError:
        document = {"error": "response is not JSON"}
    return _Call(int(response.get("statusCode", 502)), document, float(timing[1]) if timing else client_ms)


@dataclass(frozen=True)
class Unanswered:
    """The replaced version exists but did not answer its metadata request: its signature is unknown, so the
    signature criterion fails (only a first deploy, with no replaced version, has nothing to compare)."""

    status: int
    error: str


def served_signature(invoke: Invoker, model: str) -> dict[str, Any] | Unanswered:
    """The model metadata (its input signature) the replaced version answers with, or what it answered instead."""
    call = _call(invoke, "GET", f"/v2/models/{model}")
    if call.status == 200:
        return call.document
    return Unanswered(call.status, call.error or json.dumps(call.document)[:200])


def outputs_match(actual: list[Any], expected: list[Any], atol: float, rtol: float) -> bool:
    """Labels and strings exactly; floats within tolerance; maps (ZipMap rows) key by key."""
    if len(actual) != len(expected):
        return False
    for got, want in zip(actual, expected, strict=True):
        if isinstance(want, dict):
            if not isinstance(got, dict) or set(map(str, got)) != set(map(str, want)):
                return False
            got_by_key = {str(k): v for k, v in got.items()}
            if not outputs_match([got_by_key[str(k)] for k in want], list(want.values()), atol, rtol):
                return False
        elif isinstance(want, float) or isinstance(got, float):
            if isinstance(got, bool) or not isinstance(got, int | float):
                return False
            if not math.isclose(got, want, rel_tol=rtol, abs_tol=atol):
                return False
        elif got != want:
            return False
    return True


def signature_differences(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """How the candidate breaks clients of the baseline: removed/added inputs, their datatypes and shapes; removed
    outputs, and outputs whose kind (tensor, sequence of maps), type, datatype, rank or fixed dimensions changed (a
    client parsing ZipMap's maps breaks on a probability tensor of the same name)."""
    old = {i["name"]: i for i in baseline.get("inputs", [])}
    new = {i["name"]: i for i in candidate.get("inputs", [])}
    problems = [f"input '{n}' was removed" for n in old if n not in new]
    problems += [f"new required input '{n}'" for n in new if n not in old]
    for name in old.keys() & new.keys():
        a, b = old[name], new[name]
        if a["datatype"] != b["datatype"]:
            problems.append(f"input '{name}' changed datatype {a['datatype']} -> {b['datatype']}")
        elif len(a["shape"]) != len(b["shape"]):
            problems.append(f"input '{name}' changed rank {a['shape']} -> {b['shape']}")
        else:
            for axis, (was, now) in enumerate(zip(a["shape"], b["shape"], strict=True)):
                if now != -1 and now != was:  # a fixed dimension that old requests may not meet
                    problems.append(f"input '{name}' dimension {axis} {was} -> {now}")
    return sorted(problems + output_differences(baseline, candidate))


def output_kind(spec: dict[str, Any]) -> str:
    """'tensor', or what the ONNX type of a non-tensor output is (the model metadata's ``parameters.onnx_type``)."""
    onnx_type = str((spec.get("parameters") or {}).get("onnx_type") or "")
    if not onnx_type:
        return "tensor"
    if onnx_type.startswith("seq(map("):
        return "sequence of maps"
    if onnx_type.startswith("seq("):
        return "sequence"
    if onnx_type.startswith("map("):
        return "map"
    return onnx_type


def output_differences(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """Outputs the baseline's clients read that the candidate removed or changed; a new output breaks nobody."""
    old = {o["name"]: o for o in baseline.get("outputs", [])}
    new = {o["name"]: o for o in candidate.get("outputs", [])}
    problems = [f"output '{n}' was removed" for n in old if n not in new]
    for name in old.keys() & new.keys():
        a, b = old[name], new[name]
        kind_a, kind_b = output_kind(a), output_kind(b)
        type_a, type_b = (a.get("parameters") or {}).get("onnx_type"), (b.get("parameters") or {}).get("onnx_type")
        if kind_a != kind_b:
            problems.append(
                f"output '{name}' changed kind {kind_a} ({type_a or a['datatype']}) -> {kind_b} "
                f"({type_b or b['datatype']})"
            )
        elif kind_a != "tensor":
            if type_a != type_b:  # e.g. ZipMap's keys from int64 to string: every client's lookups change
                problems.append(f"output '{name}' changed type {type_a} -> {type_b}")
        elif a["datatype"] != b["datatype"]:
            problems.append(f"output '{name}' changed datatype {a['datatype']} -> {b['datatype']}")
        elif len(a["shape"]) != len(b["shape"]):
            problems.append(f"output '{name}' changed rank {a['shape']} -> {b['shape']}")
        else:
            for axis, (was, now) in enumerate(zip(a["shape"], b["shape"], strict=True)):
                if was != -1 and now != was:  # e.g. 3 classes -> 4: a fixed width clients index into
                    problems.append(f"output '{name}' dimension {axis} {was} -> {now}")
    return problems


def synthetic_inputs(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """A one-row request from the signature alone, for the latency probe of a bundle without acceptance set."""
    inputs = []
    for spec in metadata.get("inputs", []):
        shape = [1 if d == -1 else d for d in spec["shape"]]
        size = int(np.prod(shape)) if shape else 1
        datatype = spec["datatype"]
        value: Any = "" if datatype == "BYTES" else (False if datatype == "BOOL" else 0)
        inputs.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": [value] * size})
    return inputs


@dataclass
class CaseScore:
    """An acceptance set as answered by one version."""

    evaluated: int = 0
    correct: int = 0
    wrong: list[str] = field(default_factory=list)  # the first three mismatches
    errors: list[str] = field(default_factory=list)
    non_finite: int = 0
    latencies: list[float] = field(default_factory=list)


def score_cases(
    model: str,
    invoke: Invoker,
    cases: list[AcceptanceCase],
    criteria: AcceptanceCriteria,
    *,
    seconds_left: Callable[[], float] | None = None,
) -> CaseScore:
    """Each case's inputs sent to ``invoke`` and its answer matched with the case's expectation (``criteria``'s
    tolerances); stops before a call with less than MIN_CALL_SECONDS left."""
    score = CaseScore()
    for case in cases:
        if seconds_left is not None and seconds_left() < MIN_CALL_SECONDS:
            break
        score.evaluated += 1
        call = _call(invoke, "POST", f"/v2/models/{model}/infer", {"inputs": case.inputs})
        score.latencies.append(call.latency_ms)
        if call.status >= 400:
            score.errors.append(f"line {case.line}: HTTP {call.status} {call.error}")
            score.non_finite += NON_FINITE_MARKER in call.error
            continue
        outputs = {o["name"]: o.get("data", []) for o in call.document.get("outputs", [])}
        if all(
            name in outputs and outputs_match(outputs[name], want, criteria.atol, criteria.rtol)
            for name, want in case.expected.items()
        ):
            score.correct += 1
        elif len(score.wrong) < 3:  # one JSON object a case, one case a line: a person reads it, a script parses it
            got = {name: outputs.get(name) for name in case.expected}
            score.wrong.append(json.dumps({"line": case.line, "expected": case.expected, "got": got}))
    return score


def evaluate(
    model: str,
    invoke: Invoker,
    cases: list[AcceptanceCase],
    criteria: AcceptanceCriteria,
    *,
    baseline_metadata: dict[str, Any] | Unanswered | None = None,
    seconds_left: Callable[[], float] | None = None,
    replay_records: Sequence[dict[str, Any]] | Unavailable | None = None,
) -> Verdict:
    """Measure the version behind ``invoke`` against ``criteria``; never raises for what the model does.

    ``baseline_metadata``: the replaced version's (``served_signature``), None on a first deploy.
    ``seconds_left``: the time calls may still take (the hook's remaining time less its report's reserve); no call
    starts with less than MIN_CALL_SECONDS left, and a gate cut short before the whole acceptance set fails.
    ``replay_records``: captured requests of the replaced version to replay (``replay.read_capture``), or why there
    are none; None leaves the replay out (a gate with nothing to replace it by).
    """

    def out_of_time() -> bool:
        return seconds_left is not None and seconds_left() < MIN_CALL_SECONDS

    if out_of_time():
        verdict = Verdict(model, "?")
        verdict.criteria.append(
            CriterionResult("model serves", False, "not asked", "HTTP 200", "ran out of time before the first request")
        )
        return verdict
    metadata_call = _call(invoke, "GET", f"/v2/models/{model}")
    version = str((metadata_call.document.get("versions") or ["?"])[0])
    verdict = Verdict(model, version)
    loads = metadata_call.status == 200
    verdict.criteria.append(
        CriterionResult(
            "model serves",
            loads,
            f"HTTP {metadata_call.status}",
            "HTTP 200",
            metadata_call.error,
        )
    )
    if not loads:
        return verdict
    metadata = metadata_call.document

    if criteria.breaking_change:
        verdict.criteria.append(CriterionResult("signature", True, "breaking change declared", "compatible"))
    elif baseline_metadata is None:
        verdict.criteria.append(CriterionResult("signature", True, "no previous version", "compatible"))
    elif isinstance(baseline_metadata, Unanswered):
        verdict.criteria.append(
            CriterionResult(
                "signature",
                False,
                "replaced version's signature unknown",
                "compatible",
                f"the replaced version answered its metadata request with HTTP {baseline_metadata.status}: "
                f"{baseline_metadata.error} (declare acceptance.breaking_change to deploy without the check)",
            )
        )
    else:
        problems = signature_differences(baseline_metadata, metadata)
        verdict.criteria.append(
            CriterionResult(
                "signature",
                not problems,
                "compatible" if not problems else f"{len(problems)} change(s)",
                "compatible",
                "; ".join(problems) + (" (declare acceptance.breaking_change if intended)" if problems else ""),
            )
        )

    score = score_cases(model, invoke, cases, criteria, seconds_left=seconds_left)
    latencies, errors, non_finite = score.latencies, score.errors, score.non_finite
    correct, wrong, evaluated = score.correct, score.wrong, score.evaluated

    ran_out = evaluated < len(cases)
    probe_inputs = [c.inputs for c in cases] or [synthetic_inputs(metadata)]
    cut_short = False
    while len(latencies) < criteria.probe_requests and not ran_out:
        if out_of_time():
            cut_short = True
            break
        call = _call(
            invoke, "POST", f"/v2/models/{model}/infer", {"inputs": probe_inputs[len(latencies) % len(probe_inputs)]}
        )
        latencies.append(call.latency_ms)
        if call.status >= 400:
            errors.append(f"probe: HTTP {call.status} {call.error}")
            non_finite += NON_FINITE_MARKER in call.error

    total = len(cases)
    rate = correct / total if total else 0.0
    if ran_out:  # never a pass on a partial set: the cases not run might be the ones that fail
        verdict.criteria.append(
            CriterionResult(
                "acceptance set",
                False,
                f"{correct}/{total} correct, {total - evaluated} not run",
                f">= {criteria.min_pass_rate:.1%}",
                "\n".join([f"ran out of time after {evaluated} of {total} cases", *wrong]),
            )
        )
    else:
        verdict.criteria.append(
            CriterionResult(
                "acceptance set",
                rate >= criteria.min_pass_rate if total else criteria.min_pass_rate == 0,
                f"{correct}/{total} correct ({rate:.1%})" if total else "no acceptance set",
                f">= {criteria.min_pass_rate:.1%}",
                "\n".join(wrong) if total else "add acceptance.jsonl to the bundle (or set acceptance.min_pass_rate 0)",
            )
        )
    verdict.criteria.append(
        CriterionResult("finite outputs", non_finite == 0, f"{non_finite} response(s) with NaN/Inf", "0")
    )
    verdict.criteria.append(
        CriterionResult(
            "error responses",
            len(errors) <= criteria.max_error_responses,
            str(len(errors)),
            f"<= {criteria.max_error_responses}",
            "; ".join(errors[:3]),
        )
    )
    p99 = float(np.percentile(latencies, 99)) if latencies else math.inf
    verdict.criteria.append(
        CriterionResult(
            "p99 latency",
            p99 <= criteria.latency_budget_ms,
            f"{p99:.2f} ms over {len(latencies)} requests" + (" (cut short)" if cut_short else ""),
            f"<= {criteria.latency_budget_ms:g} ms",
            f"p50 {float(np.percentile(latencies, 50)):.2f} ms" if latencies else "",
        )
    )
    if replay_records is not None:
        from .replay import Unavailable as NothingToReplay
        from .replay import replay

        if criteria.breaking_change and not isinstance(replay_records, NothingToReplay):
            # Requests and answers of the replaced signature do not describe the new one.
            replay_records = NothingToReplay("breaking change declared: captured requests fit the old signature")
        verdict.criteria += replay(model, invoke, replay_records, criteria.replay, seconds_left=seconds_left).criteria
    return verdict
