"""The tensor decoders at their edges, called directly: JSON data (protocol.to_array) across the fast paths'
boundaries (exactly 64 values, 0.0/1.0 beside true/false, each float datatype's largest value and the first that
overflows to inf), and binary tensor data (protocol.from_binary): BYTES length prefixes truncated, over-long or
exact, BOOL bytes other than 0 and 1, sizes against the shape, NaN and Inf, a tensor at a misaligned offset.

Whatever path a value takes, a client sees the same answer: the array of its datatype and shape, or a 400 whose
message names the input, the value at fault and its position. These are the cases the functional tests do not
send (issue 17: the survivors of ``make mutate``'s protocol decoding group).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from functions.inference import protocol
from functions.inference.datatypes import OIP_TO_NUMPY
from functions.inference.errors import BadRequest

pytestmark = pytest.mark.unit

NON_FINITE_HINT = (
    "this model takes finite numbers only (NaN and Inf are refused unless the model's metadata_props list the input "
    "under modelrail.non_finite_inputs)"
)


def refusal(decode: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The 400's message: a client error, never another exception (the handler answers those with a 500)."""
    with pytest.raises(BadRequest) as caught:
        decode(*args, **kwargs)
    return caught.value.message


def strings(*values: str | bytes) -> memoryview:
    """BYTES binary data as tritonclient writes it: each element a 4-byte little-endian length, then its bytes."""
    raw = [v.encode() if isinstance(v, str) else v for v in values]
    return memoryview(b"".join(struct.pack("<I", len(v)) + v for v in raw))


# --- JSON data: protocol.to_array ---------------------------------------------------------------------------

# Shapes on either side of the one-row path (at most 64 values, checked in Python) and of the flat path above it.
SHAPES = [[1, 2], [2, 32], [1, 65], [2, 50]]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_flat_numbers_come_back_in_the_datatype_and_shape(datatype: str, shape: list[int]) -> None:
    size = math.prod(shape)
    data: list[Any] = [(i % 7) - 3 if i % 2 else round(0.37 * i - 5, 2) for i in range(size)]  # ints and floats

    array = protocol.to_array("x", datatype, data, shape)

    assert (array.dtype, array.shape) == (OIP_TO_NUMPY[datatype], tuple(shape))
    np.testing.assert_array_equal(array, np.array(data, dtype=np.float64).astype(OIP_TO_NUMPY[datatype]).reshape(shape))


@pytest.mark.parametrize("rows", [1, 2, 30])
@pytest.mark.parametrize("datatype", ["FP32", "INT32"])
def test_nested_data_comes_back_in_the_shape(datatype: str, rows: int) -> None:
    data = [[row * 3 + column for column in range(3)] for row in range(rows)]

    array = protocol.to_array("x", datatype, data, [rows, 3])

    assert array.shape == (rows, 3)
    np.testing.assert_array_equal(array, np.array(data, dtype=OIP_TO_NUMPY[datatype]))


@pytest.mark.parametrize("size", [2, 64, 65, 100])
def test_zeros_and_ones_are_numbers_but_true_and_false_are_refused(size: int) -> None:
    """struct.pack and numpy both take true as 1.0: the decoder looks at what the client sent where 1.0 is."""
    data: list[Any] = [float(i % 2) if i % 3 else i % 2 for i in range(size)]  # 0.0, 1.0, 0 and 1 only
    np.testing.assert_array_equal(protocol.to_array("x", "FP32", data, [size]), np.array(data, dtype=np.float32))

    for bad, shown in ((True, "true"), (False, "false")):
        sent = [*data[:-1], bad]
        assert refusal(protocol.to_array, "x", "FP32", sent, [size]) == (
            f"input 'x' is FP32: 'data' must hold numbers only, got {shown} at position {size - 1}"
        )


@pytest.mark.parametrize("size", [2, 64, 100])
@pytest.mark.parametrize(
    ("bad", "shown"), [("1.5", "'1.5' (a string)"), (None, "null"), ([1.0], "an array of 1 (an array)")]
)
def test_float_data_with_a_value_of_another_json_type_is_refused(size: int, bad: Any, shown: str) -> None:
    data = [0.5] * size
    data[1] = bad

    message = refusal(protocol.to_array, "x", "FP32", data, [size])

    if isinstance(bad, list):  # an array among numbers: refused as ragged nesting
        assert message == "input 'x': 'data' is a ragged nested array: arrays and single values at depth 1"
    else:
        assert message == f"input 'x' is FP32: 'data' must hold numbers only, got {shown} at position 1"


# The largest finite value of each float datatype, and the smallest JSON number past it that the datatype rounds
# to inf (below that, numpy rounds down to the largest value, as IEEE 754 round-to-nearest does).
FLOAT_LIMITS = [
    ("FP16", 65504.0, 65520.0, "65504"),
    ("FP32", 3.4028234663852886e38, 3.4028235677973366e38, "3.40282e+38"),
    ("FP64", 1.7976931348623157e308, None, "1.79769e+308"),  # JSON has no larger number (orjson refuses 1e309)
]


@pytest.mark.parametrize("size", [2, 64, 100])
@pytest.mark.parametrize(("datatype", "largest", "overflowing", "shown"), FLOAT_LIMITS)
def test_each_float_datatype_takes_its_largest_value_and_refuses_the_first_that_overflows(
    datatype: str, largest: float, overflowing: float | None, shown: str, size: int
) -> None:
    data = [0.25] * size
    data[0], data[-1] = -largest, largest

    array = protocol.to_array("x", datatype, data, [size])

    assert np.isfinite(array).all()
    assert (array[0], array[-1]) == (-largest, largest)
    for sign in (1, -1):
        if overflowing is None:
            continue
        sent = [*data[:-1], sign * overflowing]
        assert refusal(protocol.to_array, "x", datatype, sent, [size]) == (
            f"input 'x': value {sign * overflowing!r} is out of range for {datatype} (at most {shown} in magnitude), "
            f"at position {size - 1}"
        )


@pytest.mark.parametrize("shape", [[2], [1, 64], [100]])
@pytest.mark.parametrize(("data", "shown"), [(5, "5 (a number)"), (None, "null"), ({"a": 1}, "an object of 1")])
def test_data_that_is_not_an_array_is_refused(shape: list[int], data: Any, shown: str) -> None:
    if isinstance(data, dict):
        shown += " (an object)"
    assert refusal(protocol.to_array, "x", "FP32", data, shape) == (
        f"input 'x': 'data' must be a JSON array, got {shown}"
    )


@pytest.mark.parametrize("size", [2, 64, 100])
@pytest.mark.parametrize("datatype", ["FP32", "INT64"])
def test_flat_data_of_another_length_than_the_shape_is_refused(datatype: str, size: int) -> None:
    fewer = list(range(size - 1))
    assert refusal(protocol.to_array, "x", datatype, fewer, [size]) == (
        f"input 'x': 'data' holds {size - 1} values but its shape needs {size}"
    )
    more = list(range(size + 1))
    assert refusal(protocol.to_array, "x", datatype, more, [size]) == (
        f"input 'x': 'data' holds {size + 1} values but its shape needs {size}"
    )


@pytest.mark.parametrize("datatype", ["FP32", "INT64"])
def test_data_nested_otherwise_than_the_shape_is_refused_even_with_the_right_count(datatype: str) -> None:
    assert refusal(protocol.to_array, "x", datatype, [[1, 2], [3, 4]], [4]) == (
        "input 'x': 'data' is nested as [2, 2] but its shape is [4]; send it flat or nested as the shape"
    )
    assert refusal(protocol.to_array, "x", datatype, [[1, 2], [3, 4]], [1, 4]) == (
        "input 'x': 'data' is nested as [2, 2] but its shape is [1, 4]; send it flat or nested as the shape"
    )


def test_integer_data_with_a_fraction_names_the_input_and_the_value() -> None:
    assert refusal(protocol.to_array, "x", "INT32", [1, 2.5], [2]) == (
        "input 'x' is INT32: 'data' must hold integers only, got 2.5 at position 1"
    )


# --- binary tensor data: protocol.from_binary ----------------------------------------------------------------


def test_bytes_elements_come_back_whole_the_last_one_empty_ending_exactly_at_the_end() -> None:
    array = protocol.from_binary("x", "BYTES", strings("a", "héllo", "", "b\x00", ""), 5)

    assert array.dtype == object
    assert array.tolist() == ["a", "héllo", "", "b\x00", ""]


def test_a_truncated_bytes_length_prefix_is_refused_naming_where() -> None:
    chunk = memoryview(bytes(strings("ab")) + b"\x01\x00")  # the second element's length: 2 bytes of 4

    assert refusal(protocol.from_binary, "x", "BYTES", chunk, 2) == (
        "input 'x': truncated BYTES element length at byte 6"
    )


@pytest.mark.parametrize("length", [4, 2**31, 2**32 - 1])
def test_a_bytes_length_past_the_data_is_refused_naming_it(length: int) -> None:
    chunk = memoryview(struct.pack("<I", length) + b"abc")

    assert refusal(protocol.from_binary, "x", "BYTES", chunk, 1) == (
        f"input 'x': BYTES element of {length} bytes runs past its binary data"
    )


def test_more_or_fewer_bytes_elements_than_the_shape_are_refused() -> None:
    assert refusal(protocol.from_binary, "x", "BYTES", strings("a", "b", "c"), 2) == (
        "input 'x': binary data holds more than the 2 BYTES elements of its shape"
    )
    assert refusal(protocol.from_binary, "x", "BYTES", strings("a"), 2) == (
        "input 'x': binary data holds 1 BYTES elements but its shape needs 2"
    )


def test_a_bytes_element_that_is_not_utf8_is_refused_naming_it() -> None:
    assert refusal(protocol.from_binary, "x", "BYTES", strings("ok", b"\xff"), 2) == (
        "input 'x': BYTES element 1 is not UTF-8 text (invalid start byte)"
    )


def test_bool_bytes_0_and_1_are_false_and_true() -> None:
    array = protocol.from_binary("x", "BOOL", memoryview(bytes([0, 1, 1, 0])), 4)

    assert array.dtype == np.bool_
    assert array.tolist() == [False, True, True, False]


@pytest.mark.parametrize("byte", [2, 0x80, 0xFF])
@pytest.mark.parametrize("size", [1, 3, 8])
def test_bool_bytes_other_than_0_and_1_are_refused(byte: int, size: int) -> None:
    raw = bytes([1] * (size - 1) + [byte])

    assert refusal(protocol.from_binary, "x", "BOOL", memoryview(raw), size) == (
        "input 'x': BOOL binary data must hold bytes 0 or 1"
    )


@pytest.mark.parametrize(("datatype", "itemsize"), [("INT8", 1), ("FP16", 2), ("FP32", 4), ("UINT64", 8)])
def test_binary_data_of_exactly_the_shapes_size_is_read_little_endian(datatype: str, itemsize: int) -> None:
    dtype = OIP_TO_NUMPY[datatype]
    values = np.arange(1, 7).astype(dtype)

    array = protocol.from_binary("x", datatype, memoryview(values.astype(dtype.newbyteorder("<")).tobytes()), 6)

    assert array.dtype == dtype
    np.testing.assert_array_equal(array, values)
    for wrong in (6 * itemsize - 1, 6 * itemsize + 1):
        assert refusal(protocol.from_binary, "x", datatype, memoryview(bytes(wrong)), 6) == (
            f"input 'x': binary data holds {wrong} bytes but its shape and {datatype} need {6 * itemsize}"
        )


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize(("bad", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_non_finite_binary_data_is_refused_by_default_naming_input_value_and_position(
    datatype: str, bad: float, shown: str
) -> None:
    raw = memoryview(np.array([1.5, bad, 2.0], dtype=OIP_TO_NUMPY[datatype]).tobytes())

    assert refusal(protocol.from_binary, "x", datatype, raw, 3) == (
        f"input 'x': binary data holds {shown} at position 1; {NON_FINITE_HINT}"
    )
    accepted = protocol.from_binary("x", datatype, raw, 3, allow_non_finite=True)
    np.testing.assert_array_equal(accepted, np.array([1.5, bad, 2.0], dtype=OIP_TO_NUMPY[datatype]))


def test_a_tensor_at_a_misaligned_offset_comes_back_aligned_with_its_values() -> None:
    """The binary data starts wherever the JSON header ended: here one byte into the body."""
    values = np.array([1.5, -2.25, 3.0, 1e-3], dtype=np.float32)
    body = memoryview(b"{" + values.tobytes())

    array = protocol.from_binary("x", "FP32", body[1:], 4)

    assert array.flags.aligned
    np.testing.assert_array_equal(array, values)
