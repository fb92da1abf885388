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
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .datatypes import DATATYPES, OIP_TO_NUMPY, oip_datatype_of
from .errors import BadRequest, UnsupportedMediaType
from .model import OnnxModel

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


def parse_body(body: str | bytes | None, is_base64: bool = False, header_length: str | None = None) -> Payload:
    """The request's JSON document, split from its binary tensor data when ``header_length`` is given."""
    if body is None or body == "" or body == b"":
        raise BadRequest("request body is empty; expected a JSON object")
    raw: str | bytes = body
    if is_base64:
        try:
            raw = binascii.a2b_base64(body, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("request body is flagged base64 but is not valid base64") from exc
    binary: memoryview | None = None
    if header_length is not None:
        data = raw.encode() if isinstance(raw, str) else raw
        if not header_length.isdigit() or int(header_length) > len(data):
            raise BadRequest(
                f"Inference-Header-Content-Length is {header_length!r}; expected the JSON header's size in "
                f"bytes, at most the body's {len(data)}"
            )
        raw, binary = data[: int(header_length)], memoryview(data)[int(header_length) :]
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(document).__name__}")
    return Payload(document, binary)


def to_array(name: str, datatype: str, data: Any, expected_size: int | None) -> np.ndarray:
    """Convert one input's JSON data to numpy with the datatype's exact rules (no silent truncation)."""
    if not isinstance(data, list):
        raise BadRequest(f"input '{name}': 'data' must be a JSON array, got {type(data).__name__}")
    try:
        inferred = np.asarray(data)
    except ValueError as exc:
        raise BadRequest(f"input '{name}': 'data' is a ragged nested array ({exc})") from exc
    target = OIP_TO_NUMPY[datatype]
    kind = inferred.dtype.kind
    if inferred.size == 0:
        array = inferred.astype(target)
    elif datatype == "BYTES":
        if kind != "U":
            raise BadRequest(f"input '{name}' is BYTES: 'data' must hold strings only")
        array = inferred.astype(object)
    elif datatype == "BOOL":
        if kind != "b":
            raise BadRequest(f"input '{name}' is BOOL: 'data' must hold true/false only")
        array = inferred
    elif target.kind in "iu":
        if kind in "fO" and all(type(v) is int for v in np.array(data, dtype=object).ravel()):
            # Integers past int64 (UINT64's upper half) make numpy infer float64 or objects: convert exactly.
            try:
                return _sized(name, np.array(data, dtype=target), expected_size)
            except OverflowError as exc:
                raise BadRequest(f"input '{name}': a value is out of range for {datatype}") from exc
        if kind not in "iu":
            raise BadRequest(f"input '{name}' is {datatype}: 'data' must hold integers only")
        info = np.iinfo(target)
        low, high = inferred.min(), inferred.max()
        if low < info.min or high > info.max:
            raise BadRequest(f"input '{name}': value {low if low < info.min else high} is out of range for {datatype}")
        array = inferred.astype(target, copy=False)
    else:
        if kind not in "iuf":
            raise BadRequest(f"input '{name}' is {datatype}: 'data' must hold numbers only")
        array = inferred.astype(target, copy=False)
    return _sized(name, array, expected_size)


def _sized(name: str, array: np.ndarray, expected_size: int | None) -> np.ndarray:
    if expected_size is not None and array.size != expected_size:
        raise BadRequest(f"input '{name}': 'data' holds {array.size} values but its shape needs {expected_size}")
    return array


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
            raise BadRequest(f"{where}: 'shape' must be an array of non-negative integers, got {shape}")
        datatype = _field(tensor, "datatype", str, where, f"one of {', '.join(DATATYPES)}")
        if datatype not in OIP_TO_NUMPY:
            raise BadRequest(f"{where}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
        model.check(name, datatype, shape)
        size = math.prod(shape)
        binary_size = _parameters(tensor, where).get("binary_data_size")
        if binary_size is not None:
            if payload.binary is None:
                raise BadRequest(f"{where} has binary_data_size but the request has no Inference-Header-Content-Length")
            if not isinstance(binary_size, int) or binary_size < 0 or offset + binary_size > len(payload.binary):
                raise BadRequest(
                    f"{where}: binary_data_size {binary_size} runs past the {len(payload.binary)} bytes of binary data"
                )
            array = from_binary(name, datatype, payload.binary[offset : offset + binary_size], size)
            offset += binary_size
        elif "data" in tensor:
            array = to_array(name, datatype, tensor["data"], size)
        else:
            raise BadRequest(f"{where}: 'data' is required (the tensor's values, row-major)")
        feeds[name] = array.reshape(shape)
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


def from_binary(name: str, datatype: str, chunk: memoryview, size: int) -> np.ndarray:
    """Raw little-endian tensor bytes (BYTES: each element a 4-byte little-endian length, then the bytes)."""
    if datatype == "BYTES":
        values: list[str] = []
        position = 0
        while position < len(chunk):
            if position + 4 > len(chunk):
                raise BadRequest(f"input '{name}': truncated BYTES element length at byte {position}")
            (length,) = struct.unpack_from("<I", chunk, position)
            position += 4
            if position + length > len(chunk):
                raise BadRequest(f"input '{name}': BYTES element of {length} bytes runs past its binary data")
            try:
                values.append(bytes(chunk[position : position + length]).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise BadRequest(f"input '{name}': BYTES element is not UTF-8 text ({exc.reason})") from exc
            position += length
        return _sized(name, np.array(values, dtype=object), size)
    dtype = OIP_TO_NUMPY[datatype].newbyteorder("<")
    if len(chunk) != size * dtype.itemsize:
        raise BadRequest(
            f"input '{name}': binary data holds {len(chunk)} bytes but its shape and {datatype} need "
            f"{size * dtype.itemsize}"
        )
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise BadRequest(f"input '{name}': BOOL binary data must hold bytes 0 or 1")
    return array


def decode_v1(payload: Payload, model: OnnxModel) -> InferenceRequest:
    """A KServe v1 predict request (``{"instances": [...]}``) for a single-input model."""
    if len(model.inputs) != 1:
        raise BadRequest(
            f"KServe v1 predict serves single-input models; model '{model.name}' expects "
            f"{model.expected_inputs()}: use POST /v2/models/{model.name}/infer"
        )
    spec = next(iter(model.inputs.values()))
    instances = _field(payload.document, "instances", list, "request", "an array of instances, one per row")
    array = to_array(spec.name, spec.datatype or "BYTES", instances, None)
    model.check(spec.name, spec.datatype or "BYTES", list(array.shape))
    return InferenceRequest({spec.name: array}, model.output_names(None), None, array.shape[0] if array.ndim else 1)


def encode_output(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        flat = np.ascontiguousarray(value).ravel()
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
