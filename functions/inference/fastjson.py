"""Large float tensors in JSON bodies, decoded without a Python float per value (simdjson's flat buffer of doubles).

orjson makes one Python float of every number, which ``protocol._flat_floats`` then packs into doubles and which
are then deallocated: for a 256x784 FP32 request that is most of the handler's time beyond the model. simdjson
parses the body into its own tape and copies an array of numbers straight into a buffer of doubles.

This is a shortcut, never a second decoder: ``loads`` answers only where the request is provably decoded to the
same arrays (dtype, shape and every bit) as the orjson path would decode it, and None for anything else, which
then goes down the orjson path unchanged with its own messages. What it takes: a JSON object with unique keys
whose ``inputs`` are objects with unique keys, each with FP16/FP32/FP64 data of more than 64 values (fewer take
``protocol.to_array``'s own small path: the body is cheap for orjson) either flat or nested exactly as its shape
of positive integers, all numbers (no bool, null or string: simdjson refuses to make a double of those), within
the datatype's finite range. Everything outside the data arrays is converted to the Python values orjson makes.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from .datatypes import FLOAT_BOUNDS, SMALL_TENSOR, floats_within_range
from .model import MAX_RANK

try:
    import simdjson
except ImportError:  # a local environment without it: the orjson path, same answers, slower
    simdjson = None  # type: ignore[assignment]


def _prefer_avx2() -> None:
    """simdjson picks its AVX-512 kernels on CPUs that have them (Ice Lake and later Xeons, as Lambda's x86_64 may
    be). They parse these bodies no faster than the AVX2 ones (number conversion is scalar: 17.3 against 17.7 ms
    for 256x784), but the code that runs right after them on the core is slower: here 8% for a stdlib JSON
    decode after each parse, and the warm harness's raw session.run and naive variants ran 10-40% slower in a
    process that parsed with them. Chosen once, for every parser (simdjson's active implementation is global)."""
    parser = simdjson.Parser()
    if parser.implementation[0] == "icelake" and "haswell" in {name for name, _ in parser.get_implementations()}:
        parser.implementation = "haswell"


if simdjson is not None:
    _prefer_avx2()

# Smaller bodies go to orjson straight away: it parses one in a few microseconds, and a parse here that ends in
# None (iris's one row of four floats: ~170 bytes) would be time lost on every request.
MIN_BYTES = 1024
# What simdjson raises on a document it refuses (ValueError, UnicodeError), a type it will not convert
# (TypeError), a depth or big integer it cannot hold (RuntimeError), a lookup (LookupError) or an allocation.
_REFUSALS = (ValueError, TypeError, RuntimeError, LookupError, MemoryError)


def loads(raw: str | bytes) -> dict[str, Any] | None:
    """The request document, each input's data already the array ``protocol.to_array`` would make of it, when
    every input with data is one this module takes; None when orjson must decode the body."""
    if simdjson is None or len(raw) < MIN_BYTES:
        return None
    # Necessary conditions, cheaper than a parse: a float datatype written plainly, and no byte order mark
    # (simdjson skips a UTF-8 BOM, orjson refuses it).
    if raw[:1] in ("\ufeff", b"\xef") or ("FP" not in raw if isinstance(raw, str) else b"FP" not in raw):
        return None
    try:
        return _document(_parser(len(raw)).parse(raw), raw)
    except _REFUSALS:  # RuntimeError too when this thread's parser is still in use: never, as _document keeps no proxy
        return None


# Lambda's limit on a synchronous request's payload. Up to it, each thread keeps its parser: a fresh one maps its
# buffers again (tape, structural indexes, a padded copy of the body) and takes the page faults of every request,
# which cost here as much as the parse (24 against 42 ms for 256x784). What it keeps is bounded by the largest body
# parsed so far: about 9 MB for the 4 MB of 256x784, at most ~10 bytes per byte of body for a document of nothing
# but empty arrays.
REUSE_BYTES = 6 * 1024 * 1024
_local = threading.local()


def _parser(length: int) -> Any:
    if length > REUSE_BYTES:
        return simdjson.Parser()
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def _document(root: Any, raw: str | bytes) -> dict[str, Any] | None:
    fields = _fields(root)
    if fields is None or not isinstance(fields.get("inputs"), simdjson.Array):
        return None
    document = {key: _python(value) for key, value in fields.items() if key != "inputs"}
    inputs: list[Any] = []
    arrays = 0  # the data's own arrays (the others are counted in the decoded document)
    for proxy in fields["inputs"]:
        tensor = _fields(proxy)
        if tensor is None or "data" not in tensor:
            return None
        decoded = {key: _python(value) for key, value in tensor.items() if key != "data"}
        data = _floats(tensor["data"], decoded.get("datatype"), decoded.get("shape"))
        if data is None:
            return None
        array, nested = data
        decoded["data"] = array
        inputs.append(decoded)
        arrays += nested
    document["inputs"] = inputs
    # simdjson's flat buffer flattens ANY nesting: [[], [1, 2]] gives two values, as [[1], 2] does. So count: the
    # body's '[' characters are its arrays plus any '[' written inside its strings. The arrays outside the data
    # are the lists of the decoded document (an object's dropped duplicate key only makes the body's count
    # larger), those of the data at least the ones checked level by level against the shape. The counts are
    # equal only if the data has no other array and no string holds a '[': then every value counted in the
    # buffer is a number at the shape's last level.
    if _brackets(raw) != arrays + _lists(document):
        return None
    return document


def _brackets(raw: str | bytes) -> int:
    """The number of '[' in the body. numpy counts bytes four times as fast as bytes.count (1.5 against 6.5 ms for
    4 MB); a str (API Gateway's body) is counted as it is: encoding it first costs more than the count."""
    if isinstance(raw, str):
        return raw.count("[")
    return int(np.count_nonzero(np.frombuffer(raw, dtype=np.uint8) == ord("[")))


def _fields(proxy: Any) -> dict[str, Any] | None:
    """An object's members as simdjson gives them (arrays and objects as proxies); None for a non-object or
    duplicate keys (orjson keeps the last, simdjson's lookup finds the first)."""
    if not isinstance(proxy, simdjson.Object):
        return None
    keys = list(proxy)
    if len(set(keys)) != len(keys):
        return None
    return {key: proxy[key] for key in keys}


def _python(value: Any) -> Any:
    """The value as orjson makes it: dict, list, str, int, float, bool or None (simdjson's converters keep an
    object's last duplicate key, as orjson does)."""
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _floats(data: Any, datatype: Any, shape: Any) -> tuple[np.ndarray, int] | None:
    """The data as ``protocol.to_array`` decodes it and the number of JSON arrays its nesting takes, or None when
    it is not flat or nested as the shape, not all numbers, or not all within the datatype's range."""
    if type(datatype) is not str or datatype not in FLOAT_BOUNDS or not isinstance(data, simdjson.Array):
        return None
    if type(shape) is not list or not 0 < len(shape) <= MAX_RANK or not all(type(d) is int and d > 0 for d in shape):
        return None
    size = math.prod(shape)
    if size <= SMALL_TENSOR:  # to_array's own small path: the body is cheap for orjson
        return None
    # Flat (or nested as a shape whose other dimensions are all 1: then the caller's '[' count refuses it), or nested.
    nested = 1 if len(data) == size else _nested_as(data, shape)
    if nested is None:
        return None
    doubles = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
    if len(doubles) != size:
        return None
    array = floats_within_range(doubles, datatype)  # the range check and cast of protocol._flat_floats
    if array is None:
        return None
    return array.reshape(shape), nested


def _nested_as(data: Any, shape: list[int]) -> int | None:
    """The number of arrays of data nested as ``shape`` (every array at depth d an array of shape[d] elements, down
    to the last dimension's arrays, whose elements are not walked: each would become a Python float), or None.
    That the last arrays hold numbers only, and nothing deeper, is what the caller's buffer size and '[' count
    prove."""
    level = [data]
    arrays = 0
    for length in shape[:-1]:
        if any(not isinstance(a, simdjson.Array) or len(a) != length for a in level):
            return None
        arrays += len(level)
        level = [child for a in level for child in a]
    if any(not isinstance(a, simdjson.Array) or len(a) != shape[-1] for a in level):
        return None
    return arrays + len(level)


def _lists(value: Any) -> int:
    """The number of lists in a decoded value. Iterative: a value may nest up to simdjson's depth limit (1024)."""
    lists = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            lists += 1
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.values())
    return lists
