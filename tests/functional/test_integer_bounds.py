"""Every integer datatype at its bounds: the minimum and maximum go through the model and back exactly, one past
either end is a 400 naming the input and the value (a boundary refused would fail real clients' extreme values)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.inference.datatypes import OIP_TO_NUMPY
from tests import builders

pytestmark = pytest.mark.functional

INTEGER_TYPES = ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]


def body(datatype: str, data: list[int]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, len(data)], "datatype": datatype, "data": data}]}


def bounds(datatype: str) -> tuple[int, int]:
    info = np.iinfo(OIP_TO_NUMPY[datatype])
    return int(info.min), int(info.max)


def shown(value: int) -> str:
    """How the error shows a value: orjson reads an integer past int64's minimum or uint64's maximum as a float."""
    return repr(float(value)) if not -(2**63) <= value < 2**64 else str(value)


@pytest.fixture
def echo(deploy: Callable[..., Any], tmp_path: Path) -> Callable[[str], Any]:
    return lambda datatype: deploy(builders.identity(tmp_path / f"{datatype}.onnx", datatype), "echo")


@pytest.mark.parametrize("datatype", INTEGER_TYPES)
def test_the_minimum_and_maximum_go_through_exactly(echo: Callable[[str], Any], datatype: str) -> None:
    low, high = bounds(datatype)
    answer = echo(datatype).infer(body(datatype, [low, high]))

    assert answer.status == 200, answer.error
    (output,) = answer.body["outputs"]
    assert (output["datatype"], output["shape"], output["data"]) == (datatype, [1, 2], [low, high])


@pytest.mark.parametrize("end", ["below", "above"])
@pytest.mark.parametrize("datatype", INTEGER_TYPES)
def test_one_past_either_end_is_refused_naming_input_and_value(
    echo: Callable[[str], Any], datatype: str, end: str
) -> None:
    low, high = bounds(datatype)
    past = low - 1 if end == "below" else high + 1
    data = [past, 0] if end == "below" else [0, past]

    answer = echo(datatype).infer(body(datatype, data))

    assert answer.status == 400
    position = 0 if end == "below" else 1
    assert f"input 'x': value {shown(past)} is out of range for {datatype}" in answer.error
    assert f"at position {position}" in answer.error
