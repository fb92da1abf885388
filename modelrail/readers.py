"""Data a user hands the command line: tables (CSV, Parquet), Open Inference Protocol request lines (JSONL) and
capture records, read one way for ``init``, ``baseline`` and ``drift``.

A table's columns become the model's inputs by feature name when the header names them all, else in order for a
model with one input; then the header's names are the features' display names (``mean radius`` rather than
``input[0]``), carried into the baseline, the drift table and its PNG.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from functions.inference.datatypes import OIP_TO_NUMPY
from functions.inference.errors import BadRequest
from functions.inference.model import ModelLoadError, OnnxModel, TensorSpec
from functions.inference.protocol import decode_v2, dumps, encode_output, parse_body
from functions.monitor.capture import Columns, parse_records

CHUNK_ROWS = 4096
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CAPTURE_SUFFIXES = (".gz", *JSONL_SUFFIXES)


class DataError(ValueError):
    """Data the command cannot use; the message names the file (and line or column) and what was expected."""


def load_model(path: Path, name: str = "model") -> OnnxModel:
    try:
        return OnnxModel(name, "reference", path, max_batch_rows=10**9).load()
    except ModelLoadError as exc:
        raise DataError(f"{path}: {exc}") from exc


def input_features(spec: TensorSpec, width: int | None = None) -> list[str]:
    """The feature names of one model input (shape [-1] or [-1, 1]: the input's name; [-1, k]: name[j])."""
    dims = spec.shape[1:]
    if not dims or dims == (1,):
        return [spec.name]
    k = math.prod(d for d in dims if d is not None) if None not in dims else width
    if k is None:
        raise DataError(f"input {spec.describe()} has a dynamic feature dimension: the data must give its width")
    return [f"{spec.name}[{j}]" for j in range(k)]


# --- tables ---------------------------------------------------------------------------------------------------


@dataclass
class Table:
    """Columns of a CSV or Parquet file; ``header`` is None for a CSV whose first row holds numbers."""

    path: Path
    header: list[str] | None
    columns: list[list[Any]]

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def pop(self, name: str) -> list[Any]:
        """Take the column ``name`` out of the table (a label column is no model input)."""
        if self.header is None or name not in self.header:
            found = f"columns {self.header}" if self.header else "no header row"
            raise DataError(f"{self.path}: no column {name!r} ({found})")
        index = self.header.index(name)
        self.header.pop(index)
        return self.columns.pop(index)

    def select(self, rows: list[int]) -> Table:
        return Table(self.path, self.header, [[column[i] for i in rows] for column in self.columns])


def is_table(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def read_table(path: Path) -> Table:
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected CSV, Parquet or JSONL of inference requests)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(path)
    elif suffix in (".parquet", ".pq"):
        table = _read_parquet(path)
    else:
        raise DataError(f"{path}: unknown table format {suffix!r}; expected .csv or .parquet")
    if table.rows == 0:
        raise DataError(f"{path}: no data rows")
    return table


def _cell(text: str) -> Any:
    if text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _read_csv(path: Path) -> Table:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        return Table(path, None, [])
    header: list[str] | None = None
    if not all(isinstance(_cell(c), float) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(header) if header else len(rows[0]) if rows else 0
    for number, row in enumerate(rows, 2 if header else 1):
        if len(row) != width:
            raise DataError(f"{path}:{number}: {len(row)} columns, expected {width}")
    return Table(path, header, [[_cell(row[j]) for row in rows] for j in range(width)])


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return Table(path, list(table.column_names), [table.column(name).to_pylist() for name in table.column_names])


@dataclass
class Feeds:
    """Model inputs from a table, and the display name of each feature the header names differently."""

    arrays: dict[str, np.ndarray]
    display_names: dict[str, str] = field(default_factory=dict)


def table_feeds(model: OnnxModel, table: Table) -> Feeds:
    """Model inputs from table columns: by feature name when the header has them all, else positionally for a
    single input (the header's names then become the features' display names)."""
    specs = list(model.inputs.values())
    header, columns = table.header, table.columns
    by_name: dict[str, list[Any]] = dict(zip(header, columns, strict=True)) if header else {}
    try:
        names = {spec.name: input_features(spec) for spec in specs}
    except DataError:
        names = {}
    if names and header and all(f in by_name for fs in names.values() for f in fs):
        return Feeds({spec.name: _input_array(spec, [by_name[f] for f in names[spec.name]]) for spec in specs})
    if len(specs) == 1:
        spec = specs[0]
        expected = input_features(spec, len(columns))
        if len(expected) == len(columns):
            shown = dict(zip(expected, header, strict=True)) if header else {}
            return Feeds({spec.name: _input_array(spec, columns)}, {k: v for k, v in shown.items() if k != v})
    wanted = [f for spec in specs for f in input_features(spec, len(columns) if len(specs) == 1 else None)]
    got = f"columns {header}" if header else f"{len(columns)} unnamed columns"
    raise DataError(
        f"{table.path}: {got} do not match model '{model.name}': name the columns after its features {wanted}"
        + (f", or give {len(wanted)} columns in order" if len(specs) == 1 else "")
    )


def _input_array(spec: TensorSpec, columns: list[list[Any]]) -> np.ndarray:
    datatype = spec.datatype or "BYTES"
    if datatype == "BYTES":
        array = np.array([["" if v is None else text(v) for v in col] for col in columns], dtype=object).T
    else:
        values = [[math.nan if v is None else v for v in col] for col in columns]
        try:
            array = np.array(values, dtype=np.float64).T.astype(OIP_TO_NUMPY[datatype])
        except (TypeError, ValueError) as exc:
            raise DataError(f"input '{spec.name}' is {datatype}: the data holds a non-number ({exc})") from exc
    rank = len(spec.shape)
    if rank == 1:
        return array[:, 0]
    return array.reshape((array.shape[0], *(d if d is not None else -1 for d in spec.shape[1:])))


def text(value: Any) -> str:
    """A table cell as a string: 3.0 is "3" (a CSV reader cannot tell 3 from 3.0)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --- requests and answers -------------------------------------------------------------------------------------


def request_feeds(model: OnnxModel, path: Path) -> Iterator[dict[str, np.ndarray]]:
    """The inputs of each Open Inference Protocol request body in a JSONL file, decoded as the API decodes them."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            request = decode_v2(parse_body(line), model)
        except BadRequest as exc:
            raise DataError(f"{path}:{number}: {exc}") from exc
        yield request.feeds


def answer(model: OnnxModel, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"inputs", "outputs"}`` as the API (and data capture) would write this request and the model's answer.

    Through JSON exactly as the capture writes it: FP32 5.4 is captured as 5.4, not 5.400000095367432, and a
    quantile edge at a tied value must compare the same way on both sides.
    """
    try:
        results = model.predict(feeds, model.output_names(None))
    except Exception as exc:
        raise DataError(f"the model cannot run on the data: {exc}") from exc
    document: dict[str, Any] = orjson.loads(
        dumps(
            {
                "inputs": [
                    {"name": n, "shape": list(a.shape), "datatype": model.inputs[n].datatype, "data": a.ravel()}
                    for n, a in feeds.items()
                ],
                "outputs": [encode_output(n, v) for n, v in results.items()],
            }
        )
    )
    return document


def chunks(feeds: dict[str, np.ndarray], rows: int) -> Iterator[dict[str, np.ndarray]]:
    for begin in range(0, rows, CHUNK_ROWS):
        yield {name: array[begin : begin + CHUNK_ROWS] for name, array in feeds.items()}


def model_columns(model: OnnxModel, data: Path, *, drop: tuple[str, ...] = ()) -> tuple[Columns, dict[str, str]]:
    """Feature and prediction columns of ``data`` run through ``model``: a table (CSV, Parquet; ``drop``: columns
    that are no input, e.g. the labels) or OIP requests (JSONL); and the features' display names."""
    if not data.is_file():
        raise DataError(f"{data}: no such file (expected CSV, Parquet or JSONL of inference requests)")
    columns = Columns()
    if data.suffix.lower() in JSONL_SUFFIXES:
        for request in request_feeds(model, data):
            document = answer(model, request)
            columns.add(document["inputs"], document["outputs"])
        if columns.records == 0:
            raise DataError(f"{data}: no inference requests")
        return columns, {}
    table = read_table(data)
    for name in drop:
        table.pop(name)
    feeds = table_feeds(model, table)
    for chunk in chunks(feeds.arrays, table.rows):
        document = answer(model, chunk)
        columns.add(document["inputs"], document["outputs"])
    return columns, feeds.display_names


# --- capture records ------------------------------------------------------------------------------------------


def is_capture(path: Path) -> bool:
    """A folder (the capture layout), a .gz object, or JSON lines whose first record has ``outputs`` (a capture
    record; an inference request has none)."""
    if path.is_dir() or path.suffix.lower() == ".gz":
        return True
    if path.suffix.lower() not in JSONL_SUFFIXES or not path.is_file():
        return False
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return False
                return isinstance(first, dict) and "outputs" in first
    return False


def capture_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
    raise DataError(f"{path}: no such file or folder of capture records")


def capture_columns(path: Path, model: str, version: str | None = None) -> Columns:
    """Columns of the model's capture records under ``path`` (records of other models are left out)."""
    files = capture_files(path)
    columns = Columns()
    others: set[str] = set()
    for file in files:
        for record in parse_records(file.read_bytes(), str(file)):
            name = record.get("model")
            if name is not None and name != model:
                others.add(str(name))
                continue
            if version is not None and str(record.get("version")) != version:
                continue
            columns.add_record(record)
    if columns.records == 0:
        found = f" (records of {', '.join(sorted(others))} only)" if others else ""
        raise DataError(
            f"{path}: no capture records of model '{model}'{' version ' + version if version else ''} in "
            f"{len(files)} file(s){found}"
        )
    return columns
