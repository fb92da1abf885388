"""``modelrail init``: a bundle folder from a model and some data, ready for ``validate``, ``serve`` and a deploy.

From the data it writes the acceptance set: without labels a regression set (the model's own answers, which every
later version of the bundle must keep giving), with ``--labels COLUMN`` an accuracy set (the true labels, and a
pass rate, ``acceptance.min_pass_rate``, a little under the share this model gets right). It also writes the drift
baseline from the same data, read as ``modelrail baseline`` reads it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from functions.inference.model import OnnxModel, TensorSpec
from spec.bundle import ACCEPTANCE_FILE, BASELINE_FILE, MODEL_FILE, NAME_PATTERN, SETTINGS_FILE, ModelBundle
from spec.models import CDK_JSON, CONTEXT_KEY

from .baseline import write_baseline
from .readers import DataError, Table, answer, load_model, read_table, request_feeds, table_feeds, text

BUNDLE_FILES = (MODEL_FILE, SETTINGS_FILE, ACCEPTANCE_FILE, BASELINE_FILE)
DEFAULT_CASES = 100
PASS_RATE_MARGIN = 0.02  # the default pass rate sits this far under the measured one: room for a retrained model


class InitError(ValueError):
    """``init`` cannot make the bundle; the message names the file, column or option at fault."""


@dataclass
class InitResult:
    bundle: Path
    name: str
    cases: int = 0
    kind: str = "none"  # "regression", "accuracy" or "none"
    accuracy: float | None = None  # with labels: the share of the acceptance set the model gets right
    pass_rate: float = 1.0
    baseline_rows: int | None = None
    feature_names: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)  # stale files of a bundle made again with --force


def existing_files(folder: Path) -> list[str]:
    return [name for name in BUNDLE_FILES if (folder / name).exists()]


def init_bundle(
    folder: Path,
    model_path: Path,
    *,
    data: Path | None = None,
    labels: str | None = None,
    pass_rate: float | None = None,
    cases: int = DEFAULT_CASES,
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    if labels is not None and data is None:
        raise InitError("--labels names a column of --data: give --data too")
    if pass_rate is not None and labels is None:
        raise InitError("--pass-rate is the share of true labels the model must get right: give --labels too")
    if pass_rate is not None and not 0.0 <= pass_rate <= 1.0:
        raise InitError(f"--pass-rate {pass_rate}: expected a share between 0 and 1")
    if cases < 1:
        raise InitError(f"--cases {cases}: expected at least 1")
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder}: exists and is not a folder")
    existing = existing_files(folder) if folder.is_dir() else []
    if existing and not force:
        raise InitError(f"{folder}: already a bundle; --force would overwrite {', '.join(existing)}")
    name = name or folder.resolve().name
    if not _valid_name(name):
        raise InitError(
            f"model name {name!r} (from the folder name) must be 1-128 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit: give --name"
        )
    if not model_path.is_file():
        raise InitError(f"{model_path}: no such model file (expected an ONNX model)")
    try:
        model = load_model(model_path, name)
        result = InitResult(folder, name)
        acceptance: list[dict[str, Any]] = []
        if data is not None:
            acceptance = _acceptance(model, data, labels, cases, result)
            result.cases = len(acceptance)
        if result.kind == "accuracy":
            assert result.accuracy is not None
            default = max(0.0, math.floor((result.accuracy - PASS_RATE_MARGIN) * 100) / 100)
            result.pass_rate = default if pass_rate is None else pass_rate
        elif not acceptance:
            result.pass_rate = 0.0  # no acceptance set: the gate checks serving, errors and latency only
    except DataError as exc:
        raise InitError(str(exc)) from exc

    folder.mkdir(parents=True, exist_ok=True)
    if model_path.resolve() != (folder / MODEL_FILE).resolve():
        shutil.copyfile(model_path, folder / MODEL_FILE)
    settings: dict[str, Any] = {"name": name, "description": f"made by modelrail init from {model_path.name}"}
    if result.pass_rate != 1.0:
        settings["acceptance"] = {"min_pass_rate": result.pass_rate}
    (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    if acceptance:
        (folder / ACCEPTANCE_FILE).write_text("".join(json.dumps(c) + "\n" for c in acceptance))
    for stale in (ACCEPTANCE_FILE, BASELINE_FILE):
        if stale in existing and data is None:  # the previous model's set and baseline say nothing of this one
            (folder / stale).unlink()
            result.removed.append(stale)
    if data is not None:
        try:
            _, baseline = write_baseline(ModelBundle.load(folder), data, drop=(labels,) if labels else ())
        except DataError as exc:
            raise InitError(str(exc)) from exc
        result.baseline_rows = int(baseline["rows"])
        result.feature_names = dict(baseline.get("feature_names", {}))
    ModelBundle.load(folder).acceptance_cases()  # what validate and the hook will read: it must parse
    return result


def _valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None


def _spread(rows: int, n: int) -> list[int]:
    """``n`` row numbers spread evenly over the data (all of them when there are fewer)."""
    if rows <= n:
        return list(range(rows))
    return sorted({int(i) for i in np.linspace(0, rows - 1, n)})


def _acceptance(
    model: OnnxModel, data: Path, labels: str | None, cases: int, result: InitResult
) -> list[dict[str, Any]]:
    if data.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        if labels is not None:
            raise InitError(f"{data}: --labels takes a column of a CSV or Parquet file, not inference requests")
        requests = list(request_feeds(model, data))
        chosen = [requests[i] for i in _spread(len(requests), cases)]
        result.kind = "regression"
        return [_case(answer(model, feeds), None) for feeds in chosen]
    table: Table = read_table(data)
    truth = table.pop(labels) if labels is not None else None
    rows = _spread(table.rows, cases)
    feeds = table_feeds(model, table.select(rows)).arrays
    single = [{name: array[i : i + 1] for name, array in feeds.items()} for i in range(len(rows))]
    documents = [answer(model, f) for f in single]
    if truth is None:
        result.kind = "regression"
        return [_case(d, None) for d in documents]
    output = _label_output(model, labels or "")
    expected = [_label(truth[i], output, data, labels or "", i) for i in rows]
    correct = sum(_answered(d, output.name) == want for d, want in zip(documents, expected, strict=True))
    result.kind = "accuracy"
    result.accuracy = correct / len(rows)
    return [_case(d, {output.name: [want]}) for d, want in zip(documents, expected, strict=True)]


def _case(document: dict[str, Any], expected: dict[str, list[Any]] | None) -> dict[str, Any]:
    if expected is None:  # a regression set: every output as the model answers now
        expected = {o["name"]: o["data"] for o in document["outputs"]}
    return {"inputs": document["inputs"], "expected": expected}


def _label_output(model: OnnxModel, labels: str) -> TensorSpec:
    """The output that answers with a label: the first integer, string or boolean tensor."""
    for spec in model.outputs.values():
        if spec.datatype is not None and spec.datatype not in ("FP16", "FP32", "FP64"):
            return spec
    described = ", ".join(f"{s.name} ({s.datatype or s.onnx_type})" for s in model.outputs.values())
    raise InitError(
        f"--labels {labels}: the model has no label output (an integer or string tensor) to compare the labels "
        f"with; its outputs: {described}. Leave --labels out for a regression set of its own answers"
    )


def _label(value: Any, output: TensorSpec, data: Path, column: str, row: int) -> Any:
    where = f"{data}: column {column!r}, data row {row + 1}"
    if value is None:
        raise InitError(f"{where}: no label")
    if output.datatype == "BYTES":
        return text(value)
    if output.datatype == "BOOL":
        if text(value).lower() in ("1", "true"):
            return True
        if text(value).lower() in ("0", "false"):
            return False
        raise InitError(f"{where}: {value!r} is not a boolean label (output '{output.name}' is BOOL)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise InitError(f"{where}: {value!r} is not an integer label (output '{output.name}' is {output.datatype})")
    return int(value)


def _answered(document: dict[str, Any], output: str) -> Any:
    for o in document["outputs"]:
        if o["name"] == output:
            return o["data"][0] if o["data"] else None
    return None


def cdk_entry(folder: Path, cdk_json: Path = CDK_JSON) -> tuple[dict[str, str], bool]:
    """The ``models`` entry for the bundle (its path relative to cdk.json's folder when under it), and whether
    cdk.json already lists it."""
    base = cdk_json.parent.resolve()
    try:
        shown = str(folder.resolve().relative_to(base))
    except ValueError:
        shown = str(folder.resolve())
    listed = False
    try:
        models = json.loads(cdk_json.read_text())["context"][CONTEXT_KEY]["models"]
        listed = any(
            isinstance(m, dict) and m.get("bundle") and (base / m["bundle"]).resolve() == folder.resolve()
            for m in models
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {"bundle": shown}, listed


def summary(result: InitResult, model_path: Path, data: Path | None) -> str:
    folder = result.bundle
    lines = [f"wrote {folder}/: {MODEL_FILE} (from {model_path}), {SETTINGS_FILE} (name {result.name!r})"]
    if result.kind == "regression":
        lines.append(
            f"  {ACCEPTANCE_FILE}: {result.cases} cases from {data}, expecting the model's own answers (a regression "
            "set: a new version must answer these as this one does)"
        )
    elif result.kind == "accuracy":
        assert result.accuracy is not None
        lines.append(
            f"  {ACCEPTANCE_FILE}: {result.cases} cases from {data} with their true labels; this model gets "
            f"{result.accuracy:.1%} right; the gate asks >= {result.pass_rate:.0%} "
            f'("acceptance": {{"min_pass_rate": {result.pass_rate:g}}} in {SETTINGS_FILE}; change it there or '
            "with --pass-rate)"
        )
    else:
        lines.append(
            f"  no {ACCEPTANCE_FILE} (no --data): the gate checks serving, errors and latency only "
            f"(acceptance.min_pass_rate 0); give --data to make one"
        )
    if result.baseline_rows is not None:
        named = ", features named after the data's columns" if result.feature_names else ""
        lines.append(f"  {BASELINE_FILE}: the drift baseline of {result.baseline_rows} rows{named}")
    if result.removed:
        lines.append(f"  removed the previous {', '.join(result.removed)} (they described the model replaced)")
    entry, listed = cdk_entry(folder)
    if listed:
        lines.append(f"\ncdk.json already lists it under context.{CONTEXT_KEY}.models: {json.dumps(entry)}")
    else:
        lines.append(f"\nto deploy it, add to cdk.json under context.{CONTEXT_KEY}.models:\n  {json.dumps(entry)}")
    lines += [
        "\nnext:",
        f"  python -m modelrail validate {folder}                       # the acceptance gate, locally",
        f"  python -m modelrail serve {folder} --capture capture/       # the HTTP API; requests land in capture/",
        f"  python -m modelrail drift --baseline {folder} --capture capture/ --png drift.png",
        f"  python -m modelrail rehearse --baseline {folder} --candidate NEW_BUNDLE   # roll out a next version",
    ]
    return "\n".join(lines)
