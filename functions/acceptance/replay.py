"""Replay: recently captured live requests answered by the new version, compared one by one with what the live
version answered, before any user sees the new version.

The API (the pre-traffic hook, ``modelrail validate --replay`` and the rehearsal all use it):

- ``read_capture(s3, bucket, model, version, settings, *, prefix="capture/", now=None, seconds_left=None)``
  -> ``list[record] | Unavailable``: up to ``settings.requests`` newest capture records of one model version from
  the capture bucket, within ``settings.lookback_hours`` of ``now``; newest ``hour=`` partitions first, bounded
  reads, no read started with less than MIN_CALL_SECONDS left.
- ``newest_records(records, *, model, limit, version=None, since=None)`` -> ``list[record]``: the same selection
  over records already in hand (local capture files), newest first.
- ``answered_records(model, invoke, inputs, *, version="?")`` -> ``list[record]``: records made by asking a version
  (``invoke``) the given inputs, as capture would have recorded them (for a paired comparison without capture).
- ``replay(model, invoke, records, settings, *, seconds_left=None, name="replay")`` -> ``ReplayResult``: the
  records' own inputs sent to ``invoke`` (API Gateway proxy events, the gate's Invoker) and the answers compared;
  ``records`` may be an ``Unavailable`` (no capture yet, inputs excluded from capture...), which gives a skipped
  (or, with ``when_unavailable: "fail"``, failed) criterion carrying the reason. ``ReplayResult.criteria`` are rows
  of the gate's verdict table; its other fields are the figures.

In the gate: ``gate.evaluate(..., replay_records=records_or_Unavailable)`` appends ``replay(...).criteria`` (None
leaves the replay out; a declared ``breaking_change`` turns records into an Unavailable).

A record is what data capture writes: ``{"model", "version", "time", "inputs": [tensor], "outputs": [tensor],
"excluded": [names]}`` with Open Inference Protocol tensors. Comparison: answers.py (shared with the
monitor's paired canary analysis): categorical outputs agree per row (the agreement figure, for models with labels);
float outputs and ZipMap probabilities match per value within ``numeric_tolerance``; the predictions' PSI
(functions/monitor/stats.py, shipped here as stats.py) is taken per output column, the worst reported. A request
answered 5xx, or refused for NaN/Inf outputs, counts as a failure and its rows as disagreeing; so does a captured
request the new version refuses (4xx): the live version took it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .answers import answer_rows, compare_answers, float_values, is_categorical, rows, shown
from .capture import CAPTURE_PREFIX, parse_records, parse_time, tensor_columns
from .codedeploy import MIN_CALL_SECONDS
from .criteria import ReplaySettings
from .gate import NON_FINITE_MARKER, CriterionResult, Invoker, _call
from .stats import compare_distributions

Record = dict[str, Any]
CONFIDENCE_Z = 1.645  # one-sided 95%: the agreement criterion's evidence
MAX_OBJECTS_READ = 200  # capture objects read per replay at most, whatever their records (bounds the hook's S3 time)


@dataclass(frozen=True)
class Unavailable:
    """There is nothing to replay, and why (said in the verdict). ``fail``: the criterion fails whatever
    ``when_unavailable`` says (the capture could not be read: the gate fails closed)."""

    reason: str
    fail: bool = False


@dataclass
class ReplayResult:
    """The figures of one replay and the verdict rows made of them."""

    captured: int = 0  # records available to replay
    replayed: int = 0  # requests sent
    rows: int = 0  # rows those requests carried
    agreeing_rows: int = 0
    categorical_rows: int = 0  # rows with a categorical output to compare
    numeric_values: int = 0
    within_tolerance: int = 0
    psi: float | None = None
    psi_output: str = ""
    non_finite: int = 0
    server_errors: int = 0  # 5xx other than non-finite answers
    refused: int = 0  # 4xx: a request the live version answered, refused by the new one
    cut_short: bool = False
    unavailable: str = ""
    disagreements: list[str] = field(default_factory=list)
    criteria: list[CriterionResult] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return self.agreeing_rows / self.categorical_rows if self.categorical_rows else None

    @property
    def within_share(self) -> float | None:
        return self.within_tolerance / self.numeric_values if self.numeric_values else None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)


# --- choosing the records ---------------------------------------------------------------------------------------


def _record_time(record: Record) -> datetime:
    return parse_time(record.get("time")) or datetime.min.replace(tzinfo=UTC)


def newest_records(
    records: Iterable[Record],
    *,
    model: str,
    limit: int,
    version: str | None = None,
    since: datetime | None = None,
) -> list[Record]:
    """Up to ``limit`` of ``model``'s records (of ``version``, timed at or after ``since``), newest first."""
    chosen = [
        r
        for r in records
        if r.get("model") in (None, model)
        and (version is None or str(r.get("version")) == version)
        and (since is None or _record_time(r) >= since)
    ]
    chosen.sort(key=_record_time, reverse=True)
    return chosen[:limit]


def read_capture(
    s3: Any,
    bucket: str,
    model: str,
    version: str,
    settings: ReplaySettings,
    *,
    prefix: str = CAPTURE_PREFIX,
    now: datetime | None = None,
    seconds_left: Callable[[], float] | None = None,
) -> list[Record] | Unavailable:
    """The newest ``settings.requests`` records of ``model`` ``version`` in the capture bucket, timed within
    ``settings.lookback_hours`` of ``now``: ``hour=`` partitions newest first, objects newest first, stopping as soon
    as enough records are read (Firehose partitions by arrival, and a record arrives after its time: an object of
    the newest partition may hold older records, so the newest are sorted again in the end)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=settings.lookback_hours)
    base = f"{prefix.rstrip('/')}/model={model}/version={version}/" if prefix else f"model={model}/version={version}/"
    oldest_hour = since.astimezone(UTC).strftime("%Y-%m-%d-%H")

    def out_of_time() -> bool:
        return seconds_left is not None and seconds_left() < MIN_CALL_SECONDS

    paginator = s3.get_paginator("list_objects_v2")
    hours: list[str] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=base, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            part = common["Prefix"][len(base) :].rstrip("/")
            if part.startswith("hour=") and part.removeprefix("hour=") >= oldest_hour:
                hours.append(part)
    records: list[Record] = []
    objects_read = 0
    for hour in sorted(hours, reverse=True):
        if len(records) >= settings.requests or objects_read >= MAX_OBJECTS_READ or out_of_time():
            break
        objects: list[dict[str, Any]] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{base}{hour}/"):
            objects.extend(page.get("Contents", []))
        objects.sort(key=lambda o: (o.get("LastModified") or datetime.min.replace(tzinfo=UTC), o["Key"]), reverse=True)
        for obj in objects:
            if len(records) >= settings.requests or objects_read >= MAX_OBJECTS_READ or out_of_time():
                break
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            objects_read += 1
            records.extend(
                r
                for r in parse_records(body, obj["Key"])
                if str(r.get("version")) == version and now >= _record_time(r) >= since
            )
    if not records:
        return Unavailable(
            f"no captured requests of version {version} in the last {settings.lookback_hours} h "
            f"(s3://{bucket}/{base}): nothing to replay"
        )
    return newest_records(records, model=model, limit=settings.requests)


def answered_records(
    model: str, invoke: Invoker, inputs: Sequence[list[dict[str, Any]]], *, version: str = "?"
) -> list[Record]:
    """Records of ``inputs`` as answered by ``invoke`` (those it answered 200), shaped as capture writes them."""
    records = []
    for request_inputs in inputs:
        call = _call(invoke, "POST", f"/v2/models/{model}/infer", {"inputs": request_inputs})
        if call.status == 200:
            records.append(
                {
                    "model": model,
                    "version": str(call.document.get("model_version", version)),
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "inputs": request_inputs,
                    "outputs": call.document.get("outputs", []),
                    "excluded": [],
                }
            )
    return records


# --- comparing answers ------------------------------------------------------------------------------------------


@dataclass
class _Pairs:
    """Prediction columns of the requests both versions answered, for the PSI."""

    old: list[dict[str, Any]] = field(default_factory=list)
    new: list[dict[str, Any]] = field(default_factory=list)


def _compare(
    result: ReplayResult, pairs: _Pairs, record: Record, answer: list[dict[str, Any]], settings: ReplaySettings
) -> None:
    live = record.get("outputs") or []
    comparison = compare_answers(live, answer, settings.numeric_tolerance)
    result.rows += comparison.rows
    result.numeric_values += comparison.values
    result.within_tolerance += comparison.within
    if comparison.categorical:
        result.categorical_rows += comparison.rows
        result.agreeing_rows += comparison.agreeing_rows
        i = comparison.first_difference
        if i is not None and len(result.disagreements) < 3:
            new = {t["name"]: t for t in answer}
            shown = ", ".join(
                f"{t['name']} live {_shown(t, i)} new {_shown(new.get(t['name']), i)}"
                for t in live
                if t["name"] in comparison.differing
            )
            result.disagreements.append(f"{_which(record)} row {i}: {shown}")
    pairs.old.append({"outputs": list(live)})
    pairs.new.append({"outputs": list(answer)})


def _shown(tensor: dict[str, Any] | None, i: int) -> Any:
    table = rows(tensor) if tensor is not None else []
    return shown(table[i]) if i < len(table) else "missing"


def _which(record: Record) -> str:
    return f"request {record.get('request_id') or '?'} at {record.get('time') or '?'}"


def _failed(result: ReplayResult, record: Record) -> None:
    """A request the new version did not answer: its rows disagree and its float values are not within tolerance."""
    live = record.get("outputs") or []
    rows_of_request = answer_rows(live)
    result.rows += rows_of_request
    if any(is_categorical(t) for t in live):
        result.categorical_rows += rows_of_request
    result.numeric_values += sum(len(float_values(t)) for t in live)


def _psi(pairs: _Pairs) -> tuple[float | None, str]:
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for target, documents in ((old, pairs.old), (new, pairs.new)):
        for document in documents:
            columns, _ = tensor_columns(document["outputs"], outputs=True)
            for name, column in columns.items():
                if name in target:
                    target[name].values.extend(column.values)
                else:
                    target[name] = column
    worst: tuple[float, str] | None = None
    for name, column in old.items():
        other = new.get(name)
        if other is None or not column.values or not other.values or other.kind != column.kind:
            continue
        value = compare_distributions(column.values, other.values, column.kind)
        if worst is None or value > worst[0]:
            worst = (value, name)
    return (worst[0], worst[1]) if worst else (None, "")


def _unrebuildable(records: Sequence[Record]) -> str:
    excluded = sorted({str(n) for r in records for n in r.get("excluded") or []})
    if excluded:
        return (
            f"captured requests leave out inputs {excluded} (capture_exclude_inputs): they cannot be rebuilt, "
            "so there is nothing to replay"
        )
    return ""


def replay(
    model: str,
    invoke: Invoker,
    records: Sequence[Record] | Unavailable,
    settings: ReplaySettings,
    *,
    seconds_left: Callable[[], float] | None = None,
    name: str = "replay",
) -> ReplayResult:
    """Send each record's inputs to ``invoke`` and compare the answers with the record's outputs; never raises for
    what the model does. No call starts with less than MIN_CALL_SECONDS of ``seconds_left``; a replay cut short
    fails (the requests not sent might be the ones that fail) and says so. ``name`` prefixes the verdict rows."""
    result = ReplayResult()
    if not isinstance(records, Unavailable):
        result.captured = len(records)
        reason = _unrebuildable(records)
        if reason:
            records = Unavailable(reason)
        elif len(records) < settings.min_requests:
            records = Unavailable(
                f"{len(records)} captured request(s), fewer than min_requests {settings.min_requests}: "
                "too few to judge the new version by"
            )
    if isinstance(records, Unavailable):
        result.unavailable = records.reason
        skip = settings.when_unavailable == "skip" and not records.fail
        result.criteria.append(
            CriterionResult(
                name,
                skip,
                f"skipped: {records.reason}" if skip else "not replayed",
                f">= {settings.min_requests} captured requests",
                ""
                if skip
                else records.reason
                if records.fail
                else f"{records.reason} (acceptance.replay.when_unavailable is 'fail')",
            )
        )
        return result

    pairs = _Pairs()
    errors: list[str] = []
    for record in records:
        if seconds_left is not None and seconds_left() < MIN_CALL_SECONDS:
            result.cut_short = True
            break
        result.replayed += 1
        call = _call(invoke, "POST", f"/v2/models/{model}/infer", {"inputs": record.get("inputs") or []})
        if call.status == 200:
            _compare(result, pairs, record, call.document.get("outputs") or [], settings)
            continue
        _failed(result, record)
        if call.status >= 500 and NON_FINITE_MARKER in call.error:
            result.non_finite += 1
        elif call.status >= 500:
            result.server_errors += 1
        else:
            result.refused += 1
        if len(errors) < 3:
            errors.append(f"{_which(record)}: HTTP {call.status} {call.error[:200]}")
    result.psi, result.psi_output = _psi(pairs)
    _rows_of(result, settings, name, errors)
    return result


def agreement_upper_bound(agreeing: int, rows: int, z: float = CONFIDENCE_Z) -> float:
    """The upper end of the Wilson score interval for the agreement (one-sided, 95% with the default ``z``): the
    highest share of agreeing rows the replayed sample is consistent with. The gate blocks when even that is below
    ``min_agreement``: 81 of 83 rows (97.6%) cannot show that a retrain agrees less than 98% of the time (one more
    lucky row would read 98.8%), while 1 in 150, or 141 in 150, shows it beyond doubt."""
    p = agreeing / rows
    centre = p + z * z / (2 * rows)
    margin = z * math.sqrt(p * (1 - p) / rows + z * z / (4 * rows * rows))
    return min(1.0, (centre + margin) / (1 + z * z / rows))


def _rows_of(result: ReplayResult, settings: ReplaySettings, name: str, errors: list[str]) -> None:
    newest = f"newest {result.captured} captured" if result.captured else "captured"
    result.criteria.append(
        CriterionResult(
            name,
            not result.cut_short,
            f"{result.replayed} requests ({result.rows} rows) replayed of the {newest}"
            + (" (cut short)" if result.cut_short else ""),
            f">= {settings.min_requests} captured requests, all replayed",
            f"ran out of time after {result.replayed} of {result.captured} requests" if result.cut_short else "",
        )
    )
    agreement = result.agreement
    upper = None if agreement is None else agreement_upper_bound(result.agreeing_rows, result.categorical_rows)
    result.criteria.append(
        CriterionResult(
            f"{name} agreement",
            upper is None or upper >= settings.min_agreement,
            "no categorical outputs"
            if agreement is None
            else f"{result.agreeing_rows}/{result.categorical_rows} rows agree ({agreement:.1%}; "
            f"at most {upper:.1%} at 95% confidence)",
            f">= {settings.min_agreement:.1%} (not below it at 95% confidence)",
            "; ".join(result.disagreements),
        )
    )
    within = result.within_share
    result.criteria.append(
        CriterionResult(
            f"{name} within tolerance",
            within is None or within >= settings.min_within_tolerance,
            "no float outputs or probabilities"
            if within is None
            else f"{result.within_tolerance}/{result.numeric_values} values ({within:.1%})",
            f">= {settings.min_within_tolerance:.1%} within {settings.numeric_tolerance:g}",
        )
    )
    answered = result.replayed - result.non_finite - result.server_errors - result.refused
    result.criteria.append(
        CriterionResult(
            f"{name} PSI",
            result.psi is not None and result.psi <= settings.max_psi,
            "no answers to compare"
            if result.psi is None
            else f"{result.psi:.3f} ({result.psi_output}, {answered} answered requests)",
            f"<= {settings.max_psi:g}",
        )
    )
    result.criteria.append(
        CriterionResult(
            f"{name} non-finite",
            result.non_finite == 0,
            f"{result.non_finite} of {result.replayed} requests answered NaN/Inf",
            "0",
        )
    )
    result.criteria.append(
        CriterionResult(
            f"{name} errors",
            result.server_errors == 0 and result.refused == 0,
            f"{result.server_errors} 5xx, {result.refused} 4xx (requests the live version answered)",
            "0",
            "; ".join(errors),
        )
    )
