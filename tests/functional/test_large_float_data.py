"""Float data of more than 64 values (a row of image pixels, a batch) takes the decoder's flat fast path
(protocol._flat_floats): the same answers as the general path, value for value, and the same refusals, each
naming the input, the value and its position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import builders
from tests.functional.test_hostile_input import assert_client_error, tensor

pytestmark = pytest.mark.functional

SIZE = 200  # past the 64 values that the one-row path checks in Python


def values(**at: Any) -> list[Any]:
    """SIZE numbers in (-2, 2), with the given replacements at positions p<N> (e.g. p150=True)."""
    data: list[Any] = [round(float(v), 6) for v in np.linspace(-1.9, 1.9, SIZE)]
    for key, value in at.items():
        data[int(key[1:])] = value
    return data


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP32", values()),
        ("FP32", [i % 7 for i in range(SIZE)]),  # integers are numbers too
        ("FP32", [float(i % 2) for i in range(SIZE)]),  # all 0.0 and 1.0: where a bool could hide, none does
        ("FP32", values(p3=-0.0, p9=3.4028235e38, p10=-3.4028235e38)),  # FP32's largest magnitude
        ("FP32", values(p7=1e-46)),  # below FP32's smallest subnormal: 0, as numpy casts it
        ("FP16", values(p4=65504, p5=-65504.0)),
        ("FP64", values(p1=1.7976931348623157e308, p2=5e-324)),
    ],
)
def test_numbers_come_back_as_the_datatype_holds_them(
    deploy: Any, tmp_path: Path, datatype: str, data: list[Any]
) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", datatype, ["batch"]), "echo")
    answer = function.infer(tensor("x", datatype, [SIZE], data))
    assert answer.status == 200, answer.body
    [output] = answer.body["outputs"]
    held = {"FP16": np.float16, "FP32": np.float32}.get(datatype, np.float64)
    expected = np.array(data, dtype=np.float64).astype(held)
    got = np.array(output["data"], dtype=np.float64).astype(held)  # the answer's shortest repr of each value
    assert output["shape"] == [SIZE]
    assert np.array_equal(got, expected)
    assert list(np.signbit(got)) == list(np.signbit(expected))  # -0.0 stays -0.0


def test_a_row_of_784_pixels_nested_as_its_shape_is_taken(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", "FP32", ["batch", 784]), "echo")
    rows = [[(r * 784 + c) % 256 / 255 for c in range(784)] for r in range(2)]
    answer = function.infer(tensor("x", "FP32", [2, 784], rows))
    assert answer.status == 200, answer.body
    assert np.array_equal(
        np.array(answer.body["outputs"][0]["data"], dtype=np.float32), np.array(rows, dtype=np.float32).ravel()
    )


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("FP32", values(p150=True), "'data' must hold numbers only, got true at position 150"),
        # a bool among many 0.0 and 1.0 (more than one value in 16): looked for among all the values' types
        ("FP32", [float(i % 2) for i in range(SIZE - 1)] + [False], "got false at position 199"),
        ("FP32", values(p120="2.5"), "'data' must hold numbers only, got '2.5' (a string) at position 120"),
        ("FP32", values(p66=None), "'data' must hold numbers only, got null at position 66"),
        ("FP32", values(p65=[1.0]), "ragged nested array"),
        (
            "FP32",
            values(p100=1e39),
            "value 1e+39 is out of range for FP32 (at most 3.40282e+38 in magnitude), at position 100",
        ),
        ("FP32", values(p199=-3.5e38), "value -3.5e+38 is out of range for FP32"),
        ("FP16", values(p70=65520), "value 65520 is out of range for FP16"),
    ],
)
def test_refusals_name_the_value_and_its_position(
    deploy: Any, tmp_path: Path, capsys: Any, datatype: str, data: list[Any], expected: str
) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", datatype, ["batch"]), "echo")
    capsys.readouterr()
    answer = function.infer(tensor("x", datatype, [SIZE], data))
    assert_client_error(answer, capsys.readouterr().out, "input 'x'", expected)


def test_more_or_fewer_values_than_the_shape_are_refused(deploy: Any, tmp_path: Path, capsys: Any) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", "FP32", ["batch"]), "echo")
    for sent in (SIZE - 1, SIZE + 1):
        capsys.readouterr()
        answer = function.infer(tensor("x", "FP32", [SIZE], values()[:1] * sent))
        assert_client_error(answer, capsys.readouterr().out, f"'data' holds {sent} values but its shape needs {SIZE}")
