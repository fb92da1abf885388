"""fastjson (simdjson's buffer of doubles) against the orjson path it shortcuts, on generated request bodies.

The property: for any body, ``protocol.parse_body`` + ``decode_v2`` answer exactly what they answer when the body is
decoded by orjson alone (the code before fastjson): the same arrays (dtype, shape, every bit) and request fields,
or the same error message. And where fastjson answers at all, its document is orjson's, the data arrays being what
``protocol.to_array`` makes of orjson's lists. Bodies are written as JSON text, token by token, so that they carry
what a Python object cannot: duplicate keys, integers in float data, -0, subnormals, exponents past the double
range, integers past 64 bits, NaN/Infinity literals, a byte order mark, strings that hold '[' (escaped or not).

Real onnxruntime sessions (unranked identity models, one per float datatype) check the decoded requests.
"""

from __future__ import annotations

import json
import math
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from functions.inference import fastjson, protocol
from functions.inference.errors import ApiError
from functions.inference.model import OnnxModel
from tests import builders

pytestmark = pytest.mark.functional

simdjson = pytest.importorskip("simdjson")

EXAMPLES = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FLOAT_TYPES = ("FP16", "FP32", "FP64")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OnnxModel]:
    """One unranked identity model per float datatype: any shape is the model's, so decoding decides."""
    folder = tmp_path_factory.mktemp("fastjson")
    return {
        datatype: OnnxModel("m", "1", builders.unranked_identity(folder / f"{datatype}.onnx", datatype)).load()
        for datatype in FLOAT_TYPES
    }


# --- JSON text, token by token -----------------------------------------------------------------------------------


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as (key, value) pairs in order: duplicate keys allowed."""


def text(node: Any, separator: str = ",") -> str:
    if isinstance(node, Obj):
        return "{" + separator.join(f"{json.dumps(k)}:{text(v, separator)}" for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + separator.join(text(v, separator) for v in node) + "]"
    return str(node)  # a token, written as is


# Numbers a float tensor's data may rightly hold, and the edges of JSON numbers and of the datatypes' ranges.
plain_numbers = (
    st.floats(min_value=-1e4, max_value=1e4, width=32).map(repr)
    | st.floats(min_value=-6e4, max_value=6e4).map(repr)
    | st.integers(min_value=-(2**40), max_value=2**40).map(str)
)
edge_numbers = st.sampled_from(
    [
        "-0", "-0.0", "0e0", "1E+2", "1e-320", "-1e-320", "4.9e-324", "2e-324", "1e-400", "1e400", "-1e400",
        "3.4028235e38", "3.4028236e38", "-3.40282357e38", "3.5e38", "65504", "65519", "65520", "-65520.0",
        "1.7976931348623157e308", "9007199254740993", "18014398509481985", "9223372036854775807",
        "18446744073709551615", "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
    ]
)  # fmt: skip
any_double = st.floats(allow_nan=False, allow_infinity=False).map(repr)
# Values that are not numbers, or not JSON.
odd_values = st.sampled_from(
    ["true", "false", "null", '"1"', '"["', "[]", "[1.5]", "[[]]", "[1, 2]", "{}", "NaN", "Infinity", "-Infinity",
     "01", "1.", ".5", "+1"]
)  # fmt: skip
strings = st.sampled_from(
    ['"x"', '"a[b"', '"\\u005b"', '"\\ud83d\\ude00"', '"\\ud800"', '"\u00e9"', '"\\u0000"', '""', '"FP32"', '"x\\"y"']
) | st.text(max_size=6).map(json.dumps)
json_values = st.recursive(
    st.none().map(lambda _: "null") | st.booleans().map(lambda b: "true" if b else "false") | plain_numbers | strings,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.tuples(st.sampled_from(["a", "b", "[", "data", "shape"]), children), max_size=3).map(Obj)
    ),
    max_leaves=12,
)


def nest(values: list[Any], shape: list[int]) -> list[Any]:
    for length in reversed(shape[1:]):
        values = [values[i : i + length] for i in range(0, len(values), length)]
    return values


def last_level(nested: list[Any], rank: int) -> list[list[Any]]:
    """The arrays of the shape's last dimension, in order."""
    level = [nested]
    for _ in range(rank - 1):
        level = [child for array in level for child in array]
    return level


@st.composite
def float_data(draw: st.DrawFn, shape: list[int]) -> Any:
    """Data for ``shape``: flat or nested as the shape (or as another one), mostly plain numbers, with a few edge
    numbers or odd values put in, sometimes a value too many or too few."""
    size = math.prod(shape)
    values: list[Any] = draw(st.lists(plain_numbers, min_size=size, max_size=size))
    # Half the bodies are all plain numbers: the shortcut's own ground.
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        if values:
            position = draw(st.integers(0, len(values) - 1))
            values[position] = draw(st.one_of(edge_numbers, odd_values, any_double))
    change = draw(st.sampled_from(["none"] * 10 + ["drop", "add"]))
    if change == "drop" and values:
        values.pop()
    elif change == "add":
        values.append(draw(plain_numbers))
    layout = draw(st.sampled_from(["flat", "flat", "nested", "nested", "ragged", "other"]))
    if layout in ("nested", "ragged") and len(values) == size and size:
        nested = nest(values, shape)
        rows = last_level(nested, len(shape))
        if layout == "ragged" and len(rows) > 1:
            rows[1].append(rows[0].pop())  # as many values, rows of other lengths: [[1, 2], [3, 4, 5, 6]]
        return nested
    if layout == "other" and len(values) % 2 == 0 and values:
        return nest(values, [len(values) // 2, 2])
    return values


@st.composite
def shapes(draw: st.DrawFn) -> list[int]:
    """Mostly shapes of more than 64 values (fewer never take the shortcut), some of any size, some with a 0."""
    kind = draw(st.sampled_from(["large"] * 8 + ["any", "special"]))
    if kind == "special":
        return draw(st.sampled_from([[65], [1, 65], [13, 5], [2, 3, 11], [65, 1], [1, 1, 70], [0, 70], [3, 0, 30]]))
    dims = draw(st.lists(st.integers(1, 9), min_size=0, max_size=2))
    if kind == "large":
        return [*dims, draw(st.integers(65 // math.prod(dims) + 1, 300 // math.prod(dims) + 1))]
    return [*dims, draw(st.integers(1, 9))]


odd_shapes = st.sampled_from(
    ["[70, -1]", "[true, 70]", "[70.0]", '"70"', "[70, 1.5]", "[]", "null", "[18446744073709551616]"]
)


@st.composite
def tensors(draw: st.DrawFn) -> Obj:
    shape = draw(shapes())
    datatype = draw(st.sampled_from(FLOAT_TYPES * 6 + ('"INT32"', '"BOOL"', '"BYTES"', '"fp32"', "32")))
    pairs: list[tuple[str, Any]] = [
        ("name", '"x"' if draw(st.integers(0, 9)) else draw(strings)),
        ("shape", draw(odd_shapes) if not draw(st.integers(0, 9)) else list(map(str, shape))),
        ("datatype", json.dumps(datatype) if datatype in FLOAT_TYPES else datatype),
    ]
    if draw(st.integers(0, 9)):
        pairs.append(("data", draw(float_data(shape))))
    if not draw(st.integers(0, 4)):
        pairs.append((draw(st.sampled_from(["parameters", "extra", "data", "shape", "datatype"])), draw(json_values)))
    return Obj(draw(st.permutations(pairs)))


@st.composite
def bodies(draw: st.DrawFn) -> str | bytes:
    inputs = [draw(tensors()) for _ in range(draw(st.sampled_from([1, 1, 1, 2])))]
    pairs: list[tuple[str, Any]] = [("inputs", inputs)]
    if draw(st.booleans()):
        pairs.append(("id", draw(strings | plain_numbers)))
    if not draw(st.integers(0, 3)):
        pairs.append((draw(st.sampled_from(["parameters", "outputs", "extra", "inputs", "id"])), draw(json_values)))
    separator = draw(st.sampled_from([",", ", ", ",\n  "]))
    body = text(Obj(draw(st.permutations(pairs))), separator)
    before, after = (
        draw(st.sampled_from(["", " ", "\n"] * 3 + ["\ufeff"])),
        draw(st.sampled_from(["", "\r\n"] * 5 + ["x"])),
    )
    body = before + body + after
    return body.encode() if draw(st.booleans()) else body


# --- the two paths ------------------------------------------------------------------------------------------------


def outcome(payload: Any, model: OnnxModel) -> Any:
    """What a client would get from decoding: the request's fields and arrays (bit for bit), or the error."""
    try:
        if callable(payload):
            payload = payload()
        request = protocol.decode_v2(payload, model)
    except ApiError as exc:
        return ("error", type(exc).__name__, exc.status, str(exc))
    feeds = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in request.feeds.items()}
    return ("request", feeds, request.output_names, request.id, request.rows, sorted(request.binary_outputs))


def orjson_payload(body: str | bytes) -> protocol.Payload:
    """parse_body as it was before fastjson: orjson only."""
    with mock.patch.object(fastjson, "loads", return_value=None):
        return protocol.parse_body(body)


def model_for(body: str | bytes, models: dict[str, OnnxModel]) -> OnnxModel:
    try:
        datatype = orjson.loads(body)["inputs"][0]["datatype"]
    except (orjson.JSONDecodeError, LookupError, TypeError):
        datatype = "FP32"
    return models.get(datatype, models["FP32"]) if isinstance(datatype, str) else models["FP32"]


def canonical(document: dict[str, Any]) -> bytes:
    """The document without its input's data, as JSON that tells 1 from 1.0 from true."""
    stripped = dict(document)
    if isinstance(stripped.get("inputs"), list):
        stripped["inputs"] = [
            {k: v for k, v in t.items() if k != "data"} if isinstance(t, dict) else t for t in stripped["inputs"]
        ]
    return orjson.dumps(stripped, option=orjson.OPT_SORT_KEYS)


def assert_same_as_orjson(body: str | bytes, models: dict[str, OnnxModel]) -> dict[str, Any] | None:
    fast = fastjson.loads(body)
    if fast is not None:
        reference = orjson.loads(body)  # fastjson answered: orjson must accept the body too
        assert canonical(fast) == canonical(reference)
        for mine, theirs in zip(fast["inputs"], reference["inputs"], strict=True):
            expected = protocol.to_array("x", theirs["datatype"], theirs["data"], theirs["shape"])
            got = mine["data"]
            assert (got.dtype, got.shape, got.tobytes()) == (expected.dtype, expected.shape, expected.tobytes())
    model = model_for(body, models)

    def parsed() -> protocol.Payload:
        return protocol.parse_body(body)

    def reference_parsed() -> protocol.Payload:
        return orjson_payload(body)

    assert outcome(parsed, model) == outcome(reference_parsed, model)
    return fast


@EXAMPLES
@given(body=bodies())
def test_generated_bodies_decode_as_the_orjson_path_decodes_them(
    models: dict[str, OnnxModel], body: str | bytes
) -> None:
    # Small bodies too: the size threshold only saves time, the shortcut must hold at any size.
    with mock.patch.object(fastjson, "MIN_BYTES", 0):
        fast = assert_same_as_orjson(body, models)
    event("fast path" if fast is not None else "orjson path")


# --- the cases that matter, by name -------------------------------------------------------------------------------

ROW = [round(0.001 * i - 0.3, 3) for i in range(784)]


def request(data: Any, shape: list[int], datatype: str = "FP32", **extra: Any) -> str:
    return json.dumps(
        {"id": "r", "inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}], **extra}
    )


@pytest.mark.parametrize(
    "body",
    [
        request(ROW, [1, 784]),
        request([ROW, ROW], [2, 784]),
        request(ROW * 2, [2, 784], "FP16"),
        request(ROW, [784], "FP64", outputs=[{"name": "y"}], parameters={"binary_data_output": True}),
        request(list(range(784)), [1, 784]),  # integers in float data
        request([[v] for v in ROW], [784, 1]),
    ],
    ids=["one row", "two rows nested", "fp16", "fp64 with outputs", "integers", "nested as [784, 1]"],
)
def test_valid_float_requests_take_the_shortcut_and_decode_the_same(body: str, models: dict[str, OnnxModel]) -> None:
    fast = assert_same_as_orjson(body, models)
    if "[784, 1]" not in body:  # nested with len(data) == size: the '[' count sends it to orjson
        assert fast is not None


def _with(position: int, token: str, shape: str = "[1, 784]", datatype: str = "FP32", then: str = "") -> str:
    values = [repr(v) for v in ROW]
    values[position] = token
    if then:
        values[position + 1] = then
    return f'{{"inputs": [{{"name": "x", "shape": {shape}, "datatype": "{datatype}", "data": [{", ".join(values)}]}}]}}'


@pytest.mark.parametrize(
    "body",
    [
        _with(5, "true"),
        _with(5, "false"),
        _with(5, "null"),
        _with(5, '"0.5"'),
        _with(5, "[]"),
        _with(5, "[1.5]"),  # an array of one value in flat data: ragged, not 784 numbers
        _with(5, "1e39"),
        _with(5, "3.4028236e38"),  # rounds to FP32's max: the general path takes it, the shortcut leaves it
        _with(5, "70000", datatype="FP16"),
        _with(5, "65519", datatype="FP16"),
        _with(5, "1e400"),
        _with(5, "NaN"),
        _with(5, "18446744073709551616"),
        _with(5, "1e-320"),
        _with(5, "-0"),
        "\ufeff" + _with(5, "1"),
        _with(5, "1")[:-1] + ', "inputs": []}',  # duplicate key: orjson keeps the last
        _with(5, "1").replace('"datatype": "FP32"', '"datatype": "FP32", "datatype": "INT32"'),
        _with(5, "[]", then="[1, 2]"),  # an empty array, then two values: 784 values in the flat buffer
        _with(5, "[]", then="[1, 2]").replace('"name": "x"', '"name": "\\u005b"'),  # and an escaped '['
        _with(5, "1").replace('"name": "x"', '"name": "a[b"'),  # a '[' in a string: the count leaves it to orjson
        _with(5, "1", shape="[2, 392]"),
        request([ROW[:391], ROW[391:]], [2, 392]),  # ragged: 391 and 393 values, 784 in all
        _with(5, "1", shape="[1, 783]"),
        _with(5, "1", shape="[0, 784]"),
    ],
)
def test_near_valid_bodies_decode_as_the_orjson_path_decodes_them(body: str, models: dict[str, OnnxModel]) -> None:
    assert_same_as_orjson(body, models)
    assert_same_as_orjson(body.encode("utf-8"), models)
