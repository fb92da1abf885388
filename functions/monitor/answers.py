"""When two answers to the same request agree: one definition for the acceptance gate's replay (before any user
request) and the monitor's paired canary analysis (during the shift), so the two layers never disagree on it.

A row agrees when every categorical output (integer, BOOL and BYTES tensors; ZipMap rows by their argmax key) holds
the same value in both answers. An answer without categorical outputs (a regressor) agrees row by row when each of
its float values is within the tolerance. A classifier's float outputs beside its labels (probabilities) do not
decide agreement, since any retrain moves them everywhere: they are measured apart, as values within tolerance.
Only outputs both answers hold are compared (a client's ``outputs`` selection may have narrowed a captured answer;
an output removed or changed in kind is the signature check's to refuse).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .capture import argmax_key

Tensor = dict[str, Any]
FLOAT_DATATYPES = ("FP16", "FP32", "FP64")


@dataclass
class AnswerComparison:
    """One request's two answers compared: ``old`` is the reference (what the live version answered)."""

    rows: int = 0
    categorical: bool = False  # agreement was decided by categorical outputs
    agreeing_rows: int = 0
    values: int = 0  # float values (and ZipMap probabilities) compared within tolerance
    within: int = 0
    differing: list[str] = field(default_factory=list)  # outputs that differ on some row (or value)
    first_difference: int | None = None  # the first row that disagrees

    @property
    def agrees(self) -> bool:
        return self.agreeing_rows == self.rows


def rows(tensor: Tensor) -> list[Any]:
    """One entry per row: a ZipMap row's map, or the row's flat values."""
    data = list(tensor.get("data") or [])
    if data and isinstance(data[0], dict):
        return data
    shape = list(tensor.get("shape") or [len(data)])
    n = int(shape[0]) if shape else 1
    width = len(data) // n if n else 0
    return [data[i * width : (i + 1) * width] for i in range(n)]


def is_zipmap(tensor: Tensor) -> bool:
    data = tensor.get("data") or []
    return bool(data) and isinstance(data[0], dict)


def is_categorical(tensor: Tensor) -> bool:
    return is_zipmap(tensor) or tensor.get("datatype") not in FLOAT_DATATYPES


def shown(row: Any) -> Any:
    """A row as a person reads it: a ZipMap row by its argmax key, a one-value row by its value."""
    if isinstance(row, dict):
        return argmax_key(row)
    return row[0] if isinstance(row, list) and len(row) == 1 else row


def _same_category(old: Any, new: Any) -> bool:
    if isinstance(old, dict):
        return isinstance(new, dict) and argmax_key(old) is not None and argmax_key(old) == argmax_key(new)
    if isinstance(new, dict) or not isinstance(new, list) or len(new) != len(old):
        return False
    return all(str(a) == str(b) for a, b in zip(old, new, strict=True))


def close(old: Any, new: Any, tolerance: float) -> bool:
    """Within ``tolerance``, relative or absolute (absolute near 0); a non-finite new value never is."""
    if isinstance(new, bool) or not isinstance(new, int | float) or not isinstance(old, int | float):
        return False
    return math.isfinite(new) and math.isclose(new, old, rel_tol=tolerance, abs_tol=tolerance)


def float_values(tensor: Tensor) -> list[Any]:
    """The values compared within tolerance: a float tensor's, or a ZipMap's probabilities row by row."""
    if is_zipmap(tensor):
        return [value for row in tensor["data"] for value in row.values()]
    return list(tensor.get("data") or []) if tensor.get("datatype") in FLOAT_DATATYPES else []


def _aligned(old: Tensor, new: Tensor) -> list[Any]:
    """``new``'s float values in the order of ``old``'s (ZipMap rows matched by key; a missing key is None)."""
    if not is_zipmap(old):
        return float_values(new)
    new_rows = new.get("data") or []
    if len(new_rows) != len(old["data"]) or not all(isinstance(r, dict) for r in new_rows):
        return []
    values = []
    for old_row, new_row in zip(old["data"], new_rows, strict=True):
        by_key = {str(k): v for k, v in new_row.items()}
        values += [by_key.get(str(key)) for key in old_row]
    return values


def answer_rows(answer: Sequence[Tensor]) -> int:
    return max((len(rows(t)) for t in answer), default=0)


def compare_answers(old: Sequence[Tensor], new: Sequence[Tensor], tolerance: float) -> AnswerComparison:
    """Compare ``new``'s answer with ``old``'s row by row (see the module's docstring for the rule)."""
    theirs = {t["name"]: t for t in new}
    mine = {t["name"]: t for t in old if t["name"] in theirs}
    result = AnswerComparison(rows=answer_rows(list(mine.values())))
    result.categorical = any(is_categorical(t) for t in mine.values())
    row_agrees = [True] * result.rows
    for name, tensor in mine.items():
        old_values = float_values(tensor)
        new_values = _aligned(tensor, theirs[name])
        result.values += len(old_values)
        matched = len(new_values) == len(old_values)
        within = [matched and close(o, n, tolerance) for o, n in zip(old_values, new_values, strict=False)]
        result.within += sum(within)
        if is_categorical(tensor):
            old_rows, new_rows = rows(tensor), rows(theirs[name])
            same = [i < len(new_rows) and _same_category(row, new_rows[i]) for i, row in enumerate(old_rows)]
        elif result.categorical:
            continue  # probabilities beside labels: measured, not deciding
        else:
            width = len(old_values) // result.rows if result.rows else 0
            same = [all(within[i * width : (i + 1) * width]) for i in range(result.rows)] if matched else []
        same += [False] * (result.rows - len(same))
        if not all(same):
            result.differing.append(name)
        row_agrees = [a and b for a, b in zip(row_agrees, same, strict=False)]
    result.agreeing_rows = sum(row_agrees)
    result.first_difference = next((i for i, agrees in enumerate(row_agrees) if not agrees), None)
    return result
