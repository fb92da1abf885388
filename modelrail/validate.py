"""``modelrail validate``: the acceptance gate run locally, by the same code as the pre-traffic hook.

The bundle is deployed on the embedded AWS and served by a real Lambda worker, so the gate sees exactly
what the deployed function would answer. ``--against`` serves the bundle it would replace as well: for the
signature check, for a paired comparison on the replaced bundle's acceptance inputs (both versions answer them,
and their agreement is reported) and to run the replaced bundle's acceptance set on the new version (reported
beside its own). ``--replay`` replays capture files, as the hook replays the capture bucket (functions/acceptance/
replay.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions.acceptance.gate import CriterionResult, Unanswered, Verdict, evaluate, score_cases, served_signature
from functions.acceptance.replay import Record, Unavailable, answered_records, newest_records, replay
from functions.monitor.capture import parse_records
from spec.bundle import ModelBundle

from .local.environment import LocalCloud

CAPTURE_FILE_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".json")


class ReplayPathError(ValueError):
    """``--replay`` names nothing readable; the message names the path."""


def capture_records(path: Path, model: str, limit: int) -> list[Record] | Unavailable:
    """The newest ``limit`` records of ``model`` in a capture file (gzip or plain JSON lines, as Firehose writes
    them) or a folder of them (the deployed layout, ``capture/model=../version=../hour=../``, or any other)."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CAPTURE_FILE_SUFFIXES)
    else:
        raise ReplayPathError(f"--replay {path}: no such capture file or folder")
    records: list[Record] = []
    others: set[str] = set()
    for file in files:
        for record in parse_records(file.read_bytes(), str(file)):
            if record.get("model") not in (None, model):
                others.add(str(record["model"]))
            elif isinstance(record.get("inputs"), list) and isinstance(record.get("outputs"), list):
                records.append(record)
    if not records:
        found = f" (records of {', '.join(sorted(others))} only)" if others else ""
        return Unavailable(f"no capture records of model '{model}' in {path}{found}")
    return newest_records(records, model=model, limit=limit)


def validate(bundle: ModelBundle, against: ModelBundle | None = None, replay_path: Path | None = None) -> Verdict:
    settings = bundle.settings.acceptance
    # Captured requests are the replaced model's: named as it is deployed.
    replay_records = (
        capture_records(replay_path, (against or bundle).name, settings.replay.requests) if replay_path else None
    )
    with LocalCloud() as cloud:
        baseline_metadata: dict[str, Any] | Unanswered | None = None
        paired: list[Record] = []
        if against is not None:
            baseline = cloud.start_worker(cloud.deploy(against), "1")

            def invoke_old(event: dict[str, Any]) -> dict[str, Any]:
                return baseline.invoke(event).response

            baseline_metadata = served_signature(invoke_old, against.name)
            paired = answered_records(against.name, invoke_old, [c.inputs for c in against.acceptance_cases()])
            baseline.stop()
        candidate = cloud.start_worker(cloud.deploy(bundle), "2" if against is not None else "1")

        def invoke_new(event: dict[str, Any]) -> dict[str, Any]:
            return candidate.invoke(event).response

        verdict = evaluate(
            bundle.name,
            invoke_new,
            bundle.acceptance_cases(),
            settings,
            baseline_metadata=baseline_metadata,
            replay_records=replay_records,
        )
        if against is not None and verdict.criteria[0].passed:
            verdict.criteria += beside_the_replaced(bundle, against, invoke_new, paired)
        return verdict


def beside_the_replaced(
    bundle: ModelBundle, against: ModelBundle, invoke: Any, paired: list[Record]
) -> list[CriterionResult]:
    """Reported, not judged: how the new version answers the replaced bundle's acceptance inputs (agreement with
    the replaced version's own answers) and its acceptance set (its expectations, with its tolerances)."""
    rows = []
    cases = against.acceptance_cases()
    if cases:
        comparison = replay(
            bundle.name,
            invoke,
            paired,
            settings=bundle.settings.acceptance.replay.model_copy(update={"min_requests": 1}),
            name="agreement with replaced",
        )
        agreement = comparison.agreement
        measured = (
            f"{comparison.agreeing_rows}/{comparison.categorical_rows} rows agree ({agreement:.1%})"
            if agreement is not None
            else f"{comparison.within_tolerance}/{comparison.numeric_values} float values within tolerance"
        )
        rows.append(
            CriterionResult(
                "agreement with replaced",
                agreement is None or agreement >= bundle.settings.acceptance.replay.min_agreement,
                f"{measured} on its {len(paired)} acceptance inputs",
                f"reported (replay needs >= {bundle.settings.acceptance.replay.min_agreement:.1%})",
                "; ".join(comparison.disagreements),
                informational=True,
            )
        )
        score = score_cases(bundle.name, invoke, cases, against.settings.acceptance)
        rate = score.correct / len(cases)
        rows.append(
            CriterionResult(
                "replaced's acceptance set",
                rate >= against.settings.acceptance.min_pass_rate,
                f"{score.correct}/{len(cases)} correct ({rate:.1%})",
                f"reported (its own bar: >= {against.settings.acceptance.min_pass_rate:.1%})",
                "; ".join(score.wrong + score.errors[:3]),
                informational=True,
            )
        )
    return rows
