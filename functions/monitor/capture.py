"""Captured traffic: capture records from S3, and tensors turned into feature and prediction columns.

The layout (written by the inference function through Firehose): gzip-compressed JSON lines under
``capture/model=<name>/version=<lambda version>/hour=YYYY-MM-DD-HH/<object>.gz``, one record a line:
``{"model", "version", "time", "request_id", "inputs": [tensor], "outputs": [tensor], "excluded": [names]}``
with Open Inference Protocol tensors ``{"name", "shape", "datatype", "data": flat list}``.

Features: an input of shape ``[n, k]`` gives ``k`` features ``<input>[<j>]`` (higher ranks are flattened the same
way), an input of shape ``[n]`` or ``[n, 1]`` one feature ``<input>``; BYTES and BOOL inputs are categorical, the
rest numeric. Predictions: integer, BOOL and BYTES outputs are categorical, float outputs numeric (one column
per output, or ``<output>[<j>]`` for several values a row), and ZipMap outputs (one JSON map a row, e.g.
scikit-learn's ``output_probability``) count as their argmax key: the class the probabilities favour.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .stats import Column, Kind

CAPTURE_PREFIX = "capture/"
CATEGORICAL_INPUTS = ("BYTES", "BOOL")
NUMERIC_OUTPUTS = ("FP16", "FP32", "FP64")


def tensor_columns(tensors: Iterable[Mapping[str, Any]], *, outputs: bool = False) -> tuple[dict[str, Column], int]:
    """Columns of one request's (or response's) tensors, keyed by feature name, and the row count."""
    columns: dict[str, Column] = {}
    rows = 0
    for tensor in tensors:
        name, shape, datatype, data = tensor["name"], list(tensor["shape"]), tensor["datatype"], tensor["data"]
        n = shape[0] if shape else 1
        rows = max(rows, n)
        if not isinstance(data, list):
            data = list(data)
        if outputs and data and isinstance(data[0], dict):
            columns[name] = Column("categorical", [argmax_key(row) for row in data])
            continue
        categorical = datatype in CATEGORICAL_INPUTS if not outputs else datatype not in NUMERIC_OUTPUTS
        kind: Kind = "categorical" if categorical else "numeric"
        width = len(data) // n if n else 0
        if width <= 1:
            columns[name] = Column(kind, list(data[:n]))
        else:
            for j in range(width):
                columns[f"{name}[{j}]"] = Column(kind, list(data[j::width]))
    return columns, rows


def argmax_key(row: Mapping[Any, Any]) -> str | None:
    """The key of a ZipMap row's largest value (the first on ties); None for an empty or all-NaN row."""
    best: tuple[float, str] | None = None
    for key, value in row.items():
        if isinstance(value, int | float) and not math.isnan(value) and (best is None or value > best[0]):
            best = (float(value), str(key))
    return None if best is None else best[1]


@dataclass
class Columns:
    """Feature and prediction columns accumulated over many records.

    A feature missing from a record (excluded from capture for privacy) is not counted as missing: it is
    simply absent, and a feature absent from the whole window has no drift figure.
    """

    features: dict[str, Column] = field(default_factory=dict)
    predictions: dict[str, Column] = field(default_factory=dict)
    rows: int = 0
    records: int = 0
    versions: set[str] = field(default_factory=set)

    def add(self, inputs: Iterable[Mapping[str, Any]], outputs: Iterable[Mapping[str, Any]]) -> None:
        features, rows = tensor_columns(inputs)
        predictions, _ = tensor_columns(outputs, outputs=True)
        for target, new in ((self.features, features), (self.predictions, predictions)):
            for name, column in new.items():
                if name in target:
                    target[name].values.extend(column.values)
                else:
                    target[name] = column
        self.rows += rows
        self.records += 1

    def add_record(self, record: Mapping[str, Any]) -> None:
        self.add(record.get("inputs") or [], record.get("outputs") or [])
        if record.get("version") is not None:
            self.versions.add(str(record["version"]))


def parse_records(body: bytes, where: str = "") -> Iterator[dict[str, Any]]:
    """Records of one capture object: gzip (detected by its magic bytes) or plain JSON lines.

    Lines that are not JSON objects are skipped (a truncated object must not stop the monitor).
    """
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def hours(start: datetime, end: datetime) -> list[str]:
    """The ``hour=`` partitions (YYYY-MM-DD-HH) that can hold records timed in ``[start, end)``.

    Firehose partitions by arrival and buffers for up to 15 minutes, so the hour after ``end`` is read too.
    """
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = end.astimezone(UTC) + timedelta(minutes=15)
    out = []
    while hour <= last:
        out.append(hour.strftime("%Y-%m-%d-%H"))
        hour += timedelta(hours=1)
    return out


class CaptureReader:
    """Capture records of one model in a bucket, by version and time window."""

    def __init__(self, s3: Any, bucket: str, prefix: str = CAPTURE_PREFIX) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""

    def model_prefix(self, model: str) -> str:
        return f"{self.prefix}model={model}/"

    def versions(self, model: str) -> list[str]:
        """Every version with a ``version=`` partition under the model, in numeric order where numeric."""
        found: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.model_prefix(model), Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                part = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if part.startswith("version="):
                    found.append(part.removeprefix("version="))
        return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))

    def keys(self, model: str, version: str, start: datetime, end: datetime) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for hour in hours(start, end):
            prefix = f"{self.model_prefix(model)}version={version}/hour={hour}/"
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def records(self, model: str, version: str, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """The version's records timed within ``[start, end)`` (records without a readable time are skipped)."""
        for key in self.keys(model, version, start, end):
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for record in parse_records(body, key):
                at = parse_time(record.get("time"))
                if at is not None and start <= at < end:
                    yield record

    def columns(self, model: str, version: str, start: datetime, end: datetime) -> Columns:
        columns = Columns()
        for record in self.records(model, version, start, end):
            columns.add_record(record)
        return columns
