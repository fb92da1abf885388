"""Paired canary analysis: the canary's captured requests answered again by the version it replaces, and the two
answers compared request by request.

Comparing the two versions' prediction *mixes* (PredictionDivergence) misses a model that swaps labels: the class
shares merely trade places. Asking the old version what the new one was asked does not: ``CanaryDisagreement`` is
the percentage of compared requests whose answers differ.

Which versions: the alias ``live`` says. While CodeDeploy shifts it, its ``FunctionVersion`` is the version being
replaced and its routing config's one ``AdditionalVersionWeights`` entry the new version (Lambda allows one; AWS
Lambda Developer Guide, "Implement Lambda canary deployments using a weighted alias"). No weights: no deployment in
flight, nothing to compare and nothing invoked.

What is compared: the new version's capture records in the window, newest first. A record whose inputs were
excluded from capture (``capture_exclude_inputs``) cannot be rebuilt: skipped and counted. Each record's inputs
go to the old version as an API Gateway event, as a user's request would. A request disagrees when any of its
rows does, by the one rule the gate's replay also uses (answers.py): labels (and ZipMap argmax keys) differ, or, for
a model without labels, a float value differs beyond ``tolerance`` (relative, and absolute near 0). An old version
that fails a request (not 200, or non-finite answers) is not the canary's fault: counted, not compared (an alarm
that blames the new version for the old one's failures would block deploying the fix).

Bounded per run: at most ``max_requests`` invocations, and none once the run's deadline is near.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .answers import compare_answers
from .capture import CaptureReader
from .events import response_body, rest_proxy_event

ALIAS = "live"
Answer = tuple[int, list[dict[str, Any]] | None]  # HTTP status, the answer's outputs (None: none readable)
Invoker = Callable[[str, dict[str, Any]], dict[str, Any]]  # (version, API Gateway event) -> proxy response


def rollout_versions(lambda_client: Any, function_name: str, alias: str = ALIAS) -> tuple[str, str] | None:
    """``(old, new)`` while the alias routes part of its traffic to a second version, else None."""
    answer = lambda_client.get_alias(FunctionName=function_name, Name=alias)
    weights = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if not weights:
        return None
    new = next(iter(weights))
    return str(answer["FunctionVersion"]), str(new)


def lambda_invoker(lambda_client: Any, function_name: str) -> Invoker:
    """Invoke ``function_name:<version>`` with an API Gateway event; a function error reads as a 502."""

    def invoke(version: str, event: dict[str, Any]) -> dict[str, Any]:
        response = lambda_client.invoke(
            FunctionName=f"{function_name}:{version}", InvocationType="RequestResponse", Payload=json.dumps(event)
        )
        payload = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError") or not isinstance(payload, dict):
            return {"statusCode": 502, "body": json.dumps({"error": f"function error: {payload}"})}
        return payload

    return invoke


@dataclass
class PairedResult:
    """One run's paired comparison of ``new`` against ``old``."""

    old: str
    new: str
    compared: int = 0
    disagreed: int = 0
    excluded: int = 0
    """Records whose inputs were excluded from capture: they cannot be rebuilt, so were not sent."""
    old_failed: int = 0
    """Requests the old version did not answer (not 200) or answered with non-finite values: not compared."""
    unreadable: int = 0
    """Records without inputs or outputs to compare."""
    stopped: str | None = None
    """Why the run stopped before the window's records ran out (its invoke or time budget)."""
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def invoked(self) -> int:
        return self.compared + self.old_failed

    @property
    def disagreement_percent(self) -> float | None:
        return 100.0 * self.disagreed / self.compared if self.compared else None

    def to_dict(self) -> dict[str, Any]:
        rate = self.disagreement_percent
        return {
            "old": self.old,
            "new": self.new,
            "compared": self.compared,
            "disagreed": self.disagreed,
            "disagreement_percent": None if rate is None else round(rate, 2),
            "skipped_excluded_inputs": self.excluded,
            "old_failed": self.old_failed,
            "unreadable": self.unreadable,
            "stopped": self.stopped,
            "examples": self.examples,
        }


def newest_first(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: str(r.get("time") or ""), reverse=True)


def compare_records(
    records: Iterable[Mapping[str, Any]],
    invoke: Invoker,
    *,
    model: str,
    old: str,
    new: str,
    max_requests: int,
    tolerance: float,
    deadline: Callable[[], bool] = lambda: False,
) -> PairedResult:
    """Send each record's inputs to ``old`` (at most ``max_requests``, stopping when ``deadline()`` is true) and
    compare its answers with the outputs the record holds (what ``new`` answered)."""
    result = PairedResult(old, new)
    for record in records:
        if record.get("excluded"):
            result.excluded += 1
            continue
        inputs, outputs = record.get("inputs"), record.get("outputs")
        if not inputs or not outputs:
            result.unreadable += 1
            continue
        if result.invoked >= max_requests:
            result.stopped = f"invoke budget: {max_requests} requests per run"
            break
        if deadline():
            result.stopped = "time budget: the run's deadline is near"
            break
        status, answered = answer(invoke, old, model, inputs)
        if status != 200 or answered is None:
            result.old_failed += 1
            continue
        differences = differing_outputs(outputs, answered, tolerance)
        result.compared += 1
        if differences:
            result.disagreed += 1
            if len(result.examples) < 3:
                result.examples.append({"request_id": record.get("request_id"), "outputs": differences})
    return result


def answer(invoke: Invoker, version: str, model: str, inputs: list[dict[str, Any]]) -> Answer:
    body = json.dumps({"inputs": inputs}).encode()
    event = rest_proxy_event("POST", f"/v2/models/{model}/infer", {"content-type": "application/json"}, body)
    response = invoke(version, event)
    status = int(response.get("statusCode") or 502)
    if status != 200:
        return status, None
    try:
        parsed = json.loads(response_body(response))
    except ValueError:
        return 502, None
    outputs = parsed.get("outputs") if isinstance(parsed, dict) else None
    return (200, outputs) if isinstance(outputs, list) else (502, None)


def differing_outputs(captured: list[dict[str, Any]], answered: list[dict[str, Any]], tolerance: float) -> list[str]:
    """Names of the outputs on which the captured answer disagrees with ``answered`` (the old version's), by the
    gate's replay rule (answers.py); empty when the two answers agree."""
    comparison = compare_answers(answered, captured, tolerance)
    return [] if comparison.agrees else comparison.differing


def paired_analysis(
    reader: CaptureReader,
    invoke: Invoker,
    *,
    model: str,
    old: str,
    new: str,
    start: datetime,
    end: datetime,
    max_requests: int,
    tolerance: float,
    stop_at: float | None = None,
) -> PairedResult:
    """The paired comparison over ``new``'s records in ``[start, end)``; ``stop_at``: a ``time.monotonic()``
    after which no request is sent."""
    records = newest_first(reader.records(model, new, start, end))
    return compare_records(
        records,
        invoke,
        model=model,
        old=old,
        new=new,
        max_requests=max_requests,
        tolerance=tolerance,
        deadline=(lambda: stop_at is not None and time.monotonic() >= stop_at),
    )
