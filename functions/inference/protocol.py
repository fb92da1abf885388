"""Open Inference Protocol v2 and KServe v1 bodies: JSON straight to checked numpy arrays, and back.

JSON is decoded by orjson into flat Python lists that numpy converts in C; the stdlib json module costs
tens of milliseconds on a 256x784 tensor, far more than the model. Responses serialize numpy arrays
natively (orjson's numpy support) instead of going through Python lists.

The binary tensor data extension (KServe/Triton: header ``Inference-Header-Content-Length``, the JSON
header followed by raw little-endian tensors) skips JSON for tensor data entirely, in both directions.
"""

from __future__ import annotations

import binascii
import math
import operator
import struct
import sys
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import orjson

from . import fastjson
from .datatypes import (
    DATATYPES,
    FLOAT_BOUNDS,
    OIP_TO_NUMPY,
    SMALL_TENSOR,
    floats_within_range,
    oip_datatype_of,
)
from .errors import BadRequest, UnsupportedMediaType
from .model import MAX_RANK, OnnxModel

_JSON_MEDIA_TYPES = ("application/json", "text/json")
# The API's binaryMediaTypes: bodies of these types reach the function base64-encoded and intact. JSON stays
# text (base64 would cost a third more payload against Lambda's 6 MB limit, and a decode on every request).
BINARY_MEDIA_TYPES = ("application/octet-stream", "application/vnd.sagemaker-triton.binary+json")
BINARY_HEADER = "inference-header-content-length"
_NUMPY_NATIVE_KINDS = "biuf"  # what orjson serializes straight from the array buffer


@dataclass
class InferenceRequest:
    feeds: dict[str, np.ndarray]
    output_names: list[str]
    id: str | None = None
    rows: int = 0
    binary_outputs: set[str] = field(default_factory=set)


@dataclass
class Payload:
    """A request body: the JSON document and, with the binary extension, the raw tensor bytes after it."""

    document: dict[str, Any]
    binary: memoryview | None = None
    length: int | None = None  # the body's size in bytes: no tensor in it can hold more values than that


def check_content_type(content_type: str | None, binary: bool = False) -> None:
    """No content type is taken as JSON (many clients omit it); any other non-JSON type is refused."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _JSON_MEDIA_TYPES or media_type.endswith("+json"):
        return
    if binary and media_type in BINARY_MEDIA_TYPES:
        return
    raise UnsupportedMediaType(
        f"content-type {media_type!r} is not supported; send application/json, or application/octet-stream "
        "with an Inference-Header-Content-Length header for binary tensors"
    )


try:
    # API Gateway hands binary bodies (the binary tensor extension) to Lambda base64-encoded: CPython's decoder
    # runs at ~200 MB/s, 3-6 ms for one 256x784 FP32 batch, more than the model; pybase64's SIMD one takes 0.1 ms.
    # It refuses what strict a2b_base64 refuses (characters outside the alphabet, bad padding), with binascii.Error.
    from pybase64 import b64decode as _pybase64_decode

    def _b64decode(body: str | bytes) -> bytes:
        return _pybase64_decode(body, validate=True)

except ImportError:  # a local environment without it: same answers, slower

    def _b64decode(body: str | bytes) -> bytes:
        return binascii.a2b_base64(body, strict_mode=True)


def parse_body(body: str | bytes | None, is_base64: bool = False, header_length: str | None = None) -> Payload:
    """The request's JSON document, split from its binary tensor data when ``header_length`` is given."""
    if body is None or body == "" or body == b"":
        raise BadRequest("request body is empty; expected a JSON object")
    raw: str | bytes = body
    if is_base64:
        try:
            raw = _b64decode(body)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("request body is flagged base64 but is not valid base64") from exc
    binary: memoryview | None = None
    length = len(raw)
    if header_length is not None:
        data = raw.encode() if isinstance(raw, str) else raw
        length = len(data)
        # ASCII digits only: str.isdigit also takes "²" and "١٢", which int() then refuses or reads as other numbers,
        # and a length longer than the body's own needs no int() of thousands of digits to be refused.
        if not (
            header_length.isascii()
            and header_length.isdigit()
            and len(header_length) <= len(str(length))
            and int(header_length) <= length
        ):
            raise BadRequest(
                f"Inference-Header-Content-Length is {_excerpt(header_length)}; expected the JSON header's size in "
                f"bytes as ASCII digits, at most the body's {length}"
            )
        raw, binary = data[: int(header_length)], memoryview(data)[int(header_length) :]
    # Large float tensors without a Python float per value, where that is provably the same request (fastjson.py).
    document = fastjson.loads(raw) if binary is None else None
    if document is None:
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(document).__name__}")
    return Payload(document, binary, length)


# --- JSON tensor data -> numpy ------------------------------------------------------------------------------
#
# Every value is checked against the declared datatype BEFORE any array exists: numpy's own inference
# (np.asarray on the raw lists) builds one fixed-width unicode array of rows x longest string x 4 bytes as soon as
# a single string hides among numbers or short strings (a 1 MB body could take the worker past 1 GB), turns
# true into 1 and drops trailing NULs. The nesting is walked level by level in C (map/chain), never recursively,
# and never past the number of values the shape asks for; then np.fromiter converts with the exact dtype.

_JSON_KINDS = {
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}
_EXPECTED: dict[str, tuple[frozenset[type], str]] = {
    "BYTES": (frozenset({str}), "strings"),
    "BOOL": (frozenset({bool}), "true/false"),
    **{t: (frozenset({int}), "integers") for t in DATATYPES if OIP_TO_NUMPY[t].kind in "iu"},
    **{t: (frozenset({int, float}), "numbers") for t in DATATYPES if OIP_TO_NUMPY[t].kind == "f"},
}


def _excerpt(value: Any) -> str:
    """A value as the client sent it, short enough to quote in an error (a 1 MB string is not echoed back)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} characters)"
    if isinstance(value, list | dict):
        return f"{_JSON_KINDS[type(value)]} of {len(value)}"
    return repr(value)


def _described(value: Any) -> str:
    if value is None or isinstance(value, bool | float):
        return _excerpt(value)  # null, true and 2.0 say what they are
    return f"{_excerpt(value)} ({_JSON_KINDS.get(type(value), type(value).__name__)})"


Flattened = tuple[list[Any], list[int], set[type] | None, np.ndarray | None]


def _flatten(where: str, field: str, data: Any, limit: int, numbers: bool = False) -> Flattened:
    """The values of nested JSON arrays in row-major order, the nesting's dimensions, and either the values'
    types or, for ``numbers`` (float datatypes), the values as float64 when all of them are numbers or bools.

    Refuses ragged nesting, arrays mixed with values, and more than ``limit`` values, level by level: no level
    is built that holds more than ``limit`` references.
    """
    if not isinstance(data, list):
        raise BadRequest(f"{where}: '{field}' must be a JSON array, got {_described(data)}")
    level: list[Any] = data
    dims = [len(data)]
    while True:
        if len(level) > limit:
            raise BadRequest(f"{where}: '{field}' holds {len(level)} values but its shape needs {limit}")
        if numbers:
            # The fast path of float data: struct.pack converts in C (2.5x faster than array('d') for one row of
            # 784 values, 15% for 256 rows) and refuses strings, null, arrays and objects (struct.error at the
            # first one, so nested data costs nothing here); it takes bools as 1.0 and 0.0, which _typed looks for.
            try:
                return level, dims, None, np.frombuffer(struct.pack(f"{len(level)}d", *level), dtype=np.float64)
            except struct.error:
                pass
        kinds = _kinds(level)
        if list not in kinds:
            return level, dims, kinds, None
        if len(kinds) > 1:
            raise BadRequest(
                f"{where}: '{field}' is a ragged nested array: arrays and single values at depth {len(dims)}"
            )
        lengths = set(map(len, level))
        if len(lengths) > 1:
            shortest, longest = min(lengths), max(lengths)
            raise BadRequest(
                f"{where}: '{field}' is a ragged nested array: arrays of {shortest} and {longest} values at depth "
                f"{len(dims)}"
            )
        if len(dims) >= MAX_RANK:
            raise BadRequest(f"{where}: '{field}' nests arrays deeper than {MAX_RANK} levels")
        (length,) = lengths
        if len(level) * length > limit:
            raise BadRequest(
                f"{where}: '{field}' holds at least {len(level) * length} values but its shape needs {limit}"
            )
        dims.append(length)
        level = list(chain.from_iterable(level))


def _kinds(values: list[Any]) -> set[type]:
    """The types among ``values``. Tensor data is nearly always of one type: counting that one type runs a third
    faster than filling a set, and it is what keeps the type check cheaper than numpy's own inference was."""
    if values:
        first = type(values[0])
        if operator.countOf(map(type, values), first) == len(values):
            return {first}
    return set(map(type, values))


def _typed(
    where: str, field: str, datatype: str, values: list[Any], kinds: set[type] | None, doubles: np.ndarray | None
) -> np.ndarray:
    """A flat numpy array of ``datatype`` from JSON values whose types are ``kinds`` (or already converted to
    ``doubles``); 400 naming the first value of a wrong type, or out of the datatype's range."""
    target = OIP_TO_NUMPY[datatype]
    allowed, expected = _EXPECTED[datatype]
    if kinds is None:
        # Only a bool can hide among ``doubles`` (as 1.0 or 0.0): look at the values that landed there, or at
        # all of them when there are many.
        suspects = np.flatnonzero((doubles == 0.0) | (doubles == 1.0)) if doubles is not None else ()
        if len(suspects) * 16 > len(values):
            kinds = _kinds(values)
        else:
            kinds = {bool} if any(type(values[i]) is bool for i in suspects) else {float}
    if not kinds <= allowed:
        if target.kind in "iu" and kinds <= {int, float}:
            # orjson reads integers past 64 bits as floats: those are out of range, not "not integers".
            for position, value in enumerate(values):
                if type(value) is float and value.is_integer() and abs(value) >= 2**63:
                    raise BadRequest(f"{where}: value {value!r} is out of range for {datatype}, at position {position}")
        position, value = next((i, v) for i, v in enumerate(values) if type(v) not in allowed)
        got = f"got {_described(value)} at position {position}"
        raise BadRequest(f"{where} is {datatype}: '{field}' must hold {expected} only, {got}")
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values  # object references to the very strings orjson made: no copy, NULs and all
        return array
    if target.kind in "iu":
        try:
            return np.fromiter(values, dtype=target, count=len(values))
        except OverflowError:
            info = np.iinfo(target)
            position, value = next((i, v) for i, v in enumerate(values) if not info.min <= v <= info.max)
            raise BadRequest(
                f"{where}: value {value} is out of range for {datatype} ({info.min} to {info.max}), at position "
                f"{position}"
            ) from None
    with np.errstate(over="ignore"):  # overflow is checked right below, naming the value
        if doubles is not None:
            floats = doubles if target == doubles.dtype else doubles.astype(target)
        else:
            floats = np.fromiter(values, dtype=target, count=len(values))
    if target.kind == "f":
        finite = np.isfinite(floats)
        if not finite.all():
            # JSON carries no NaN or Inf (orjson refuses them), so a non-finite value is a finite number the
            # datatype cannot hold: a client error, never an inf for the model to turn into a "model failure".
            position = int(np.argmin(finite))
            raise BadRequest(
                f"{where}: value {values[position]!r} is out of range for {datatype} (at most "
                f"{float(np.finfo(target).max):.6g} in magnitude), at position {position}"
            )
    return floats


def _flat_floats(data: list[Any], datatype: str) -> np.ndarray | None:
    """Flat float data of the shape's size whose values are all numbers within the datatype's range, as one flat
    array; None for anything else (a bool, a string, nesting, a value out of range...), which the general path
    then decodes and refuses with its own message. What it skips beside _flatten and _typed: the errstate context,
    the isfinite temporary and its reduction, the index array of 0.0/1.0 values (a few microseconds per numpy
    call, most of the decoding of one 784-value row).
    """
    try:
        doubles = np.frombuffer(struct.pack(f"{len(data)}d", *data), dtype=np.float64)
    except struct.error:  # a string, null, an array or an object among them
        return None
    array = floats_within_range(doubles, datatype)
    if array is None:
        return None
    # struct.pack takes true and false as 1.0 and 0.0: where those values are, look at what the client sent.
    ones_or_zeros = doubles == 0.0
    ones_or_zeros |= doubles == 1.0
    if ones_or_zeros.any():
        suspects = np.flatnonzero(ones_or_zeros)
        if bool in _kinds(data) if len(suspects) * 16 > len(data) else any(type(data[i]) is bool for i in suspects):
            return None
    return array


def to_array(name: str, datatype: str, data: Any, shape: list[int]) -> np.ndarray:
    """One input's JSON data as a numpy array of ``shape``: flat or nested row-major, checked value by value."""
    where = f"input '{name}'"
    size = math.prod(shape)
    target = OIP_TO_NUMPY[datatype]
    if size <= SMALL_TENSOR and target.kind == "f" and type(data) is list and len(data) == size:
        # A few flat numbers (one row of features): checked in Python and converted in one numpy call, where the
        # general path's vectorized checks cost a microsecond or two per numpy call whatever the size. type() is
        # exact, so a bool (an int subclass) takes the general path and its error; so does a value past the
        # datatype's range (it would become inf).
        bound = FLOAT_BOUNDS[datatype]
        if all((type(v) is float or type(v) is int) and -bound <= v <= bound for v in data):
            return np.array(data, dtype=target).reshape(shape)
    elif target.kind == "f" and type(data) is list and len(data) == size:
        flat = _flat_floats(data, datatype)
        if flat is not None:
            return flat.reshape(shape)
    values, dims, kinds, doubles = _flatten(where, "data", data, size, target.kind == "f")
    if len(dims) > 1 and dims != list(shape):
        raise BadRequest(
            f"{where}: 'data' is nested as {dims} but its shape is {list(shape)}; send it flat or nested as the shape"
        )
    if len(values) != size:
        raise BadRequest(f"{where}: 'data' holds {len(values)} values but its shape needs {size}")
    return _typed(where, "data", datatype, values, kinds, doubles).reshape(shape)


def _size(where: str, shape: list[int], limit: int) -> int:
    """The number of values ``shape`` holds: at least one in every dimension, and no more than the body carries
    (checked as the product grows, so a shape like [2**62, 2**62] costs nothing and allocates nothing)."""
    size = 1
    for axis, dim in enumerate(shape):
        if dim == 0:
            if axis == 0:
                raise BadRequest(f"{where} has no rows (shape {shape}); send at least one")
            raise BadRequest(f"{where} has an empty dimension {axis} (shape {shape}); every dimension needs a value")
        size *= dim
        if size > limit:
            raise BadRequest(f"{where}: shape {shape} needs more values than a request of {limit} bytes can hold")
    return size


def _limit(payload: Payload) -> int:
    """The most values any tensor of this request can hold: one per byte of the body (JSON takes at least a byte
    per value, binary data at least one per element), or no bound when the body's size is unknown."""
    return sys.maxsize if payload.length is None else max(payload.length, 1)


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if key not in obj:
        raise BadRequest(f"{where}: '{key}' is required ({what})")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"{where}: '{key}' must be {what}")
    return value


def decode_v2(payload: Payload, model: OnnxModel) -> InferenceRequest:
    """An Open Inference Protocol v2 infer request, checked against the model's signature."""
    document = payload.document
    inputs = _field(document, "inputs", list, "request", "a non-empty array of input tensors")
    if not inputs:
        raise BadRequest(f"request: 'inputs' is empty; model '{model.name}' expects {model.expected_inputs()}")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("request: 'id' must be a string")
    limit = _limit(payload)
    feeds: dict[str, np.ndarray] = {}
    rows = 0
    offset = 0
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{position}] must be an object with name, shape, datatype and data")
        name = _field(tensor, "name", str, f"inputs[{position}]", "the input's name, a string")
        where = f"input '{name}'"
        if name in feeds:
            raise BadRequest(f"{where} is given twice")
        shape = _field(tensor, "shape", list, where, "an array of non-negative integers")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            shown = (
                shape if len(shape) <= MAX_RANK and all(isinstance(d, int | float) for d in shape) else _excerpt(shape)
            )
            raise BadRequest(f"{where}: 'shape' must be an array of non-negative integers, got {shown}")
        if len(shape) > MAX_RANK:
            raise BadRequest(f"{where}: 'shape' has {len(shape)} dimensions; a tensor has at most {MAX_RANK}")
        datatype = _field(tensor, "datatype", str, where, f"one of {', '.join(DATATYPES)}")
        if datatype not in OIP_TO_NUMPY:
            raise BadRequest(f"{where}: datatype {_excerpt(datatype)} is not one of {', '.join(DATATYPES)}")
        model.check(name, datatype, shape)
        size = _size(where, shape, limit)
        binary_size = _parameters(tensor, where).get("binary_data_size")
        if binary_size is not None:
            if payload.binary is None:
                raise BadRequest(f"{where} has binary_data_size but the request has no Inference-Header-Content-Length")
            if not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0:
                raise BadRequest(
                    f"{where}: binary_data_size must be a non-negative integer (bytes), got {_described(binary_size)}"
                )
            if offset + binary_size > len(payload.binary):
                raise BadRequest(
                    f"{where}: binary_data_size {binary_size} runs past the {len(payload.binary) - offset} bytes of "
                    "binary data left"
                )
            chunk = payload.binary[offset : offset + binary_size]
            array = from_binary(name, datatype, chunk, size, allow_non_finite=model.accepts_non_finite(name))
            array = array.reshape(shape)
            offset += binary_size
        elif "data" in tensor:
            data = tensor["data"]
            # An array is fastjson's: already what to_array makes of this datatype and shape.
            array = data if isinstance(data, np.ndarray) else to_array(name, datatype, data, shape)
        else:
            raise BadRequest(f"{where}: 'data' is required (the tensor's values, row-major)")
        feeds[name] = array
        rows = max(rows, shape[0] if shape else 1)
    if payload.binary is not None and offset != len(payload.binary):
        raise BadRequest(f"request: {len(payload.binary) - offset} bytes of binary data belong to no input")
    requested = document.get("outputs")
    names: list[str] | None = None
    binary_default = _parameters(document, "request").get("binary_data_output") is True
    binary_outputs: set[str] = set()
    if requested is not None:
        if not isinstance(requested, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
        ):
            raise BadRequest("request: 'outputs' must be an array of objects with a 'name'")
        names = [o["name"] for o in requested]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise BadRequest(f"output '{twice}' is requested twice")
        binary_outputs = {
            o["name"] for o in requested if _parameters(o, f"output '{o['name']}'").get("binary_data", binary_default)
        }
    output_names = model.output_names(names)
    if requested is None and binary_default:
        binary_outputs = set(output_names)
    return InferenceRequest(feeds, output_names, request_id, rows, binary_outputs)


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = obj.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be an object")
    return parameters


def from_binary(
    name: str, datatype: str, chunk: memoryview, size: int, *, allow_non_finite: bool = False
) -> np.ndarray:
    """Raw little-endian tensor bytes (BYTES: each element a 4-byte little-endian length, then the bytes).

    Float tensors must be finite unless the model says it takes NaN/Inf (``OnnxModel.accepts_non_finite``):
    a NaN sent in would come back as a "non-finite output", which the rollout alarms count against the model.
    """
    where = f"input '{name}'"
    if datatype == "BYTES":
        values: list[str] = []
        position = 0
        while position < len(chunk):
            if len(values) == size:
                raise BadRequest(f"{where}: binary data holds more than the {size} BYTES elements of its shape")
            if position + 4 > len(chunk):
                raise BadRequest(f"{where}: truncated BYTES element length at byte {position}")
            (length,) = struct.unpack_from("<I", chunk, position)
            position += 4
            if position + length > len(chunk):
                raise BadRequest(f"{where}: BYTES element of {length} bytes runs past its binary data")
            try:
                values.append(bytes(chunk[position : position + length]).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise BadRequest(f"{where}: BYTES element {len(values)} is not UTF-8 text ({exc.reason})") from exc
            position += length
        if len(values) != size:
            raise BadRequest(f"{where}: binary data holds {len(values)} BYTES elements but its shape needs {size}")
        return _typed(where, "data", "BYTES", values, {str}, None)
    dtype = OIP_TO_NUMPY[datatype].newbyteorder("<")
    if len(chunk) != size * dtype.itemsize:
        raise BadRequest(
            f"{where}: binary data holds {len(chunk)} bytes but its shape and {datatype} need {size * dtype.itemsize}"
        )
    array = np.frombuffer(chunk, dtype=dtype)
    if not array.flags.aligned:
        # The tensor starts wherever the JSON header ended: onnxruntime's kernels run ~10% slower on a misaligned
        # 256x784 FP32 input than the copy to an aligned one costs. Copied before the checks below, which run faster
        # on aligned memory too.
        array = array.copy()
    if datatype == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise BadRequest(f"{where}: BOOL binary data must hold bytes 0 or 1")
    # All finite exactly when all are within the datatype's range (NaN fails every comparison): two reductions
    # without a temporary, where isfinite makes an array of bools first; the position is looked for on failure.
    if dtype.kind == "f" and array.size and not allow_non_finite and floats_within_range(array, datatype) is None:
        position = int(np.argmin(np.isfinite(array)))
        raise BadRequest(
            f"{where}: binary data holds {float(array[position])} at position {position}; this model takes "
            "finite numbers only (NaN and Inf are refused unless the model's metadata_props list the input "
            "under modelrail.non_finite_inputs)"
        )
    return array


def decode_v1(payload: Payload, model: OnnxModel) -> InferenceRequest:
    """A KServe v1 predict request (``{"instances": [...]}``) for a single-input model: the same rules as v2, the
    shape being the instances' nesting."""
    if len(model.inputs) != 1:
        raise BadRequest(
            f"KServe v1 predict serves single-input models; model '{model.name}' expects "
            f"{model.expected_inputs()}: use POST /v2/models/{model.name}/infer"
        )
    spec = next(iter(model.inputs.values()))
    datatype = spec.datatype or "BYTES"
    where = f"input '{spec.name}'"
    instances = _field(payload.document, "instances", list, "request", "an array of instances, one per row")
    numbers = OIP_TO_NUMPY[datatype].kind == "f"
    values, dims, kinds, doubles = _flatten(where, "instances", instances, _limit(payload), numbers)
    _size(where, dims, _limit(payload))  # first: [] has no rows, whatever rank the model expects
    model.check(spec.name, datatype, dims)
    tensor = _typed(where, "instances", datatype, values, kinds, doubles).reshape(dims)
    return InferenceRequest({spec.name: tensor}, model.output_names(None), None, dims[0])


def encode_output(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)  # a view when the array is contiguous, a row-major copy when not: orjson needs one
        data = flat if flat.dtype.kind in _NUMPY_NATIVE_KINDS else flat.tolist()
        return {"name": name, "datatype": oip_datatype_of(value), "shape": list(value.shape), "data": data}
    # Sequences and maps (e.g. scikit-learn's ZipMap probabilities): one JSON value per row.
    rows = list(value) if isinstance(value, list | tuple) else [value]
    return {
        "name": name,
        "datatype": "BYTES",
        "shape": [len(rows)],
        "data": rows,
        "parameters": {"content_type": "json"},
    }


def to_binary(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OUS":
        parts = []
        for value in array.ravel():
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_v2(
    model: OnnxModel, request: InferenceRequest, results: dict[str, Any]
) -> tuple[dict[str, Any], bytes | None]:
    """The response document, and the binary tensor data to send after it when outputs asked for it."""
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        response["id"] = request.id
    outputs = []
    chunks: list[bytes] = []
    for name in request.output_names:
        value = results[name]
        if name in request.binary_outputs and isinstance(value, np.ndarray):
            raw = to_binary(value)
            chunks.append(raw)
            outputs.append(
                {
                    "name": name,
                    "datatype": oip_datatype_of(value),
                    "shape": list(value.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
        else:  # non-tensor outputs (ZipMap) have no binary form and stay JSON
            outputs.append(encode_output(name, value))
    response["outputs"] = outputs
    return response, (b"".join(chunks) if chunks else None)


def encode_v1(results: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(results.values()))
    return {"predictions": first.tolist() if isinstance(first, np.ndarray) else list(first)}


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
