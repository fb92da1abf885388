"""Properties of the request decoder over generated requests, against real models and the real handler.

Whatever a client sends (any JSON document, OIP-like requests with random datatypes, shapes and data mixing
types, binary requests with random header lengths, sizes and bytes), the answer is 200 or a 4xx whose JSON error
names the fault, never a 5xx, and the EMF metrics count it as ClientErrors, never ModelErrors or
NonFiniteOutputs: the rollout alarms read those two, so no client can roll back a good version.

These are functional tests (real onnxruntime sessions, moto, the handler cold-started by ``deploy``), not unit
tests: a decoder checked against a fake model would miss what onnxruntime itself refuses.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.inference.datatypes import DATATYPES, OIP_TO_NUMPY
from tests import builders
from tests.functional.conftest import IRIS, Function
from tests.utils import metric_values, rest_event

pytestmark = pytest.mark.functional

EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW_EXAMPLES = settings(EXAMPLES, max_examples=40)

# Any JSON value, integers past 64 bits and floats past FP32 included (orjson refuses NaN and Inf in JSON text).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


# Values at the edges of the datatypes, and of other JSON types than the data's: out of FP32, FP16, INT64, UINT64.
EDGE_VALUES = [1e39, -3.5e38, 7e4, 2**64, 2**63, -(2**63) - 1, -1, 256, True, False, "1", "", "a\x00", None, [1], {}]


def valid_values(datatype: str, magnitude: float = 1e30) -> st.SearchStrategy[Any]:
    """Values a client may rightly send for ``datatype``.

    Floats stay within ``magnitude``: a finite input that makes the model itself overflow (iris at 3e38 answers
    NaN probabilities) is, by the one rule for non-finite answers, the model's failure, not the client's.
    """
    if datatype == "BYTES":
        return st.text(max_size=12)
    if datatype == "BOOL":
        return st.booleans()
    dtype = OIP_TO_NUMPY[datatype]
    if dtype.kind == "f":
        top = min(magnitude, float(np.finfo(dtype).max))
        return st.floats(-top, top, allow_nan=False, allow_infinity=False)
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


def nest(values: list[Any], shape: list[int]) -> Any:
    """Row-major nested lists of ``shape`` holding ``values`` (which number prod(shape))."""
    if len(shape) <= 1:
        return values
    step = len(values) // shape[0]
    return [nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


@st.composite
def oip_requests(draw: st.DrawFn, signature: list[dict[str, Any]]) -> dict[str, Any]:
    """OIP-like requests for a model: mostly its own inputs, datatypes and shapes, with every part sometimes wrong."""
    tensors = []
    for spec in signature:
        if draw(st.integers(0, 19)) == 0:
            continue  # a missing input
        name = spec["name"] if draw(st.integers(0, 19)) else draw(st.text(max_size=6))
        datatype = spec["datatype"] if draw(st.integers(0, 5)) else draw(st.sampled_from([*DATATYPES, "FLOAT"]))
        declared = [draw(st.integers(1, 3)) if d == -1 else d for d in spec["shape"]]
        if spec.get("parameters", {}).get("unknown_rank"):
            declared = draw(st.lists(st.integers(1, 3), max_size=4))
        shape: Any = declared
        odd = draw(st.integers(0, 9))
        if odd == 0:
            shape = draw(st.lists(st.integers(0, 5) | st.sampled_from([2**31, 2**63 - 1, 2**64]), max_size=4))
        elif odd == 1:
            shape = draw(json_values)
        exact = math.prod(shape) if isinstance(shape, list) and all(type(d) is int for d in shape) else None
        size = exact if exact is not None and 0 <= exact <= 64 else 3  # a drawn shape may hold negative dims
        magnitude = 1e30 if spec["datatype"] in ("FP32", "FP16", "FP64") else math.inf
        element = valid_values(datatype if datatype in DATATYPES else "FP32", magnitude)
        values = draw(st.lists(element, min_size=size, max_size=size))
        if values and draw(st.booleans()):  # one value of another JSON type, or out of the datatype's range
            values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from(EDGE_VALUES) | json_scalars)
        layout = draw(st.integers(0, 9))
        data: Any = values
        if layout < 3 and exact == len(values) and exact > 0:
            data = nest(values, shape)
        elif layout == 3:
            data = draw(json_values)
        tensor: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype, "data": data}
        if draw(st.integers(0, 9)) == 0:
            del tensor[draw(st.sampled_from(["name", "shape", "datatype", "data"]))]
        tensors.append(tensor)
    request: dict[str, Any] = {"inputs": tensors}
    if draw(st.integers(0, 9)) == 0:
        request["outputs"] = draw(st.lists(st.fixed_dictionaries({"name": st.text(max_size=6)}), max_size=2))
    if draw(st.integers(0, 19)) == 0:
        request["id"] = draw(json_scalars)
    return request


def check_answer(answer: Any, printed: str, names: list[str]) -> None:
    assert answer.status == 200 or 400 <= answer.status < 500, answer.body
    assert metric_values(printed, "ModelErrors") == [0.0]
    assert metric_values(printed, "NonFiniteOutputs") == [0.0]
    assert metric_values(printed, "ClientErrors") == [0.0 if answer.status == 200 else 1.0]
    if answer.status != 200:
        error = answer.error
        assert error, answer.body
        # The fault is named: an input by name, or the part of the request at fault.
        assert any(f"'{n}'" in error for n in names) or error.startswith(
            ("request", "inputs[", "unknown input", "unknown output", "output", "Inference-Header-Content-Length")
        ), error


MODELS = ["iris", "text", "unranked", *DATATYPES]


def deployed(deploy: Any, tmp_path: Path, which: str) -> Function:
    if which == "iris":
        return deploy(IRIS, "m", MAX_BATCH_ROWS="16")
    if which == "text":
        return deploy(builders.text_classifier(tmp_path / "m.onnx"), "m", MAX_BATCH_ROWS="16")
    if which == "unranked":
        return deploy(builders.unranked_identity(tmp_path / "m.onnx"), "m", MAX_BATCH_ROWS="16")
    return deploy(builders.identity(tmp_path / "m.onnx", which), "m", MAX_BATCH_ROWS="16")


@pytest.mark.parametrize("which", MODELS)
def test_oip_requests_answer_200_or_a_client_error(deploy: Any, tmp_path: Path, capsys: Any, which: str) -> None:
    function = deployed(deploy, tmp_path, which)
    signature = function.call("GET", "/v2/models/m").body["inputs"]

    @(EXAMPLES if which in ("iris", "text", "unranked", "FP32", "BYTES", "INT64") else FEW_EXAMPLES)
    @given(request=oip_requests(signature))
    def check(request: dict[str, Any]) -> None:
        capsys.readouterr()
        answer = function.infer(request)
        names = [t["name"] for t in request["inputs"] if isinstance(t.get("name"), str)]
        check_answer(answer, capsys.readouterr().out, names + [s["name"] for s in signature])

    check()


@pytest.mark.parametrize("which", ["iris", "text", "FP32"])
def test_any_json_document_answers_200_or_a_client_error(deploy: Any, tmp_path: Path, capsys: Any, which: str) -> None:
    function = deployed(deploy, tmp_path, which)
    signature = function.call("GET", "/v2/models/m").body["inputs"]
    names = [s["name"] for s in signature]

    @EXAMPLES
    @given(
        document=json_values
        | st.fixed_dictionaries({"inputs": json_values})
        | st.fixed_dictionaries({"instances": json_values}),
        v1=st.booleans(),
    )
    def check(document: Any, v1: bool) -> None:
        capsys.readouterr()
        path = "/v1/models/m:predict" if v1 else "/v2/models/m/infer"
        answer = function.call("POST", path, json.dumps(document))
        check_answer(answer, capsys.readouterr().out, names)

    check()


def binary_tensor(datatype: str, values: list[Any]) -> bytes:
    if datatype == "BYTES":
        return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)
    return np.array(values, dtype=OIP_TO_NUMPY[datatype].newbyteorder("<")).tobytes()


@st.composite
def binary_requests(draw: st.DrawFn, spec: dict[str, Any]) -> tuple[bytes, str]:
    """Binary tensor data requests (KServe/Triton extension) with the header length, binary_data_size and bytes
    sometimes right, sometimes not."""
    datatype = spec["datatype"] if draw(st.integers(0, 4)) else draw(st.sampled_from(DATATYPES))
    shape = [draw(st.integers(1, 3)) if d == -1 else d for d in spec["shape"]]
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.lists(st.integers(0, 4) | st.just(2**62), max_size=3))
    size = math.prod(shape) if math.prod(shape) <= 64 else 2
    if draw(st.booleans()):
        magnitude = 1e30 if datatype.startswith("FP") else math.inf
        values = draw(st.lists(valid_values(datatype, magnitude), min_size=size, max_size=size))
        raw = binary_tensor(datatype, values)
        if datatype.startswith("FP") and raw and draw(st.integers(0, 3)) == 0:  # NaN or Inf among the values
            array = np.frombuffer(raw, dtype=OIP_TO_NUMPY[datatype].newbyteorder("<")).copy()
            array[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
            raw = array.tobytes()
    else:
        raw = draw(st.binary(max_size=80))
    binary_size: Any = len(raw)
    if draw(st.integers(0, 3)) == 0:
        binary_size = draw(
            st.integers(-5, 200) | st.text(string.digits, max_size=3) | st.booleans() | st.floats() | st.none()
        )
    tensor: dict[str, Any] = {"name": spec["name"], "shape": shape, "datatype": datatype}
    tensor["parameters"] = {"binary_data_size": binary_size}
    header = json.dumps({"inputs": [tensor]}).encode()
    header_length = str(len(header))
    if draw(st.integers(0, 3)) == 0:
        header_length = draw(
            st.text("0123456789²³¹١٢٣۴٥+- ", max_size=6)
            | st.integers(-10, len(header) + len(raw) + 10).map(str)
            | st.just("9" * 5000)
        )
    return header + raw, header_length


@pytest.mark.parametrize("which", ["iris", "text", "unranked", "FP32", "FP16", "BYTES", "BOOL", "UINT64"])
def test_binary_requests_answer_200_or_a_client_error(deploy: Any, tmp_path: Path, capsys: Any, which: str) -> None:
    function = deployed(deploy, tmp_path, which)
    [spec] = function.call("GET", "/v2/models/m").body["inputs"]

    @EXAMPLES
    @given(request=binary_requests(spec))
    def check(request: tuple[bytes, str]) -> None:
        body, header_length = request
        event = rest_event(
            "POST", "/v2/models/m/infer", body, content_type="application/octet-stream", base64_body=True
        )
        event["headers"]["Inference-Header-Content-Length"] = header_length
        capsys.readouterr()
        answer = function.invoke(event)
        check_answer(answer, capsys.readouterr().out, [spec["name"]])

    check()
