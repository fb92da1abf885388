"""The inference function end to end in-process: API Gateway events in, Open Inference Protocol answers out."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from functions.inference.datatypes import DATATYPES
from tests import builders
from tests.functional.conftest import IRIS
from tests.utils import Context, load_event, rest_event

FLOWERS = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]


def iris_request(data: list[float] = FLOWERS, **extra: Any) -> dict[str, Any]:
    rows = len(data) // 4
    tensor = {"name": "float_input", "shape": [rows, 4], "datatype": "FP32", "data": data}
    return {"inputs": [tensor], **extra}


@pytest.fixture
def iris(deploy: Any) -> Any:
    return deploy(IRIS, "iris", version="7")


def test_canonical_rest_proxy_event(iris: Any) -> None:
    answer = iris.invoke(load_event("apigw_rest_proxy"))

    assert answer.status == 200
    assert answer.body["model_name"] == "iris"
    assert answer.body["model_version"] == "7"
    assert answer.body["id"] == "req-42"
    assert answer.headers["x-model-version"] == "7"
    outputs = {o["name"]: o for o in answer.body["outputs"]}
    assert outputs["output_label"] == {"name": "output_label", "datatype": "INT64", "shape": [2], "data": [0, 2]}


def test_zipmap_output_comes_back_as_json_maps(iris: Any) -> None:
    answer = iris.infer(iris_request(outputs=[{"name": "output_probability"}]))

    assert answer.status == 200
    [probabilities] = answer.body["outputs"]
    assert probabilities["name"] == "output_probability"
    assert probabilities["shape"] == [2]
    assert probabilities["parameters"] == {"content_type": "json"}
    first, second = probabilities["data"]
    assert set(first) == {"0", "1", "2"}
    assert max(first, key=first.get) == "0"
    assert max(second, key=second.get) == "2"
    assert sum(first.values()) == pytest.approx(1.0, abs=1e-5)


def test_outputs_subset_and_versioned_path(iris: Any) -> None:
    answer = iris.call("POST", "/v2/models/iris/versions/7/infer", iris_request(outputs=[{"name": "output_label"}]))
    assert answer.status == 200
    assert [o["name"] for o in answer.body["outputs"]] == ["output_label"]


def test_kserve_v1_predict(iris: Any) -> None:
    answer = iris.call("POST", "/v1/models/iris:predict", {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
    assert answer.status == 200
    assert answer.body == {"predictions": [0, 2]}
    assert answer.headers["x-model-version"] == "7"


def test_metadata_health_and_readiness(iris: Any) -> None:
    assert iris.call("GET", "/v2/health/live").body == {"live": True}
    assert iris.call("GET", "/v2/health/ready").status == 200
    assert iris.call("GET", "/v2/models/iris/ready").body["ready"] is True
    assert iris.call("GET", "/v2/models/iris/versions/7/ready").status == 200
    assert iris.call("GET", "/v2").body["name"] == "modelrail"
    metadata = iris.call("GET", "/v2/models/iris").body
    assert metadata["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["versions"] == ["7"]
    assert len(metadata["parameters"]["sha256"]) == 64


def test_base64_encoded_body(iris: Any) -> None:
    answer = iris.infer(iris_request(), base64_body=True)
    assert answer.status == 200


@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_round_trips(deploy: Any, tmp_path: Path, datatype: str) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", datatype), "echo")
    values = builders.random_values(datatype, (3, 2))
    data = values.ravel().tolist()

    answer = function.infer({"inputs": [{"name": "x", "shape": [3, 2], "datatype": datatype, "data": data}]})

    assert answer.status == 200, answer.body
    [output] = answer.body["outputs"]
    assert output["datatype"] == datatype
    assert output["shape"] == [3, 2]
    if datatype in ("FP16", "FP32"):  # shortest decimal that reads back as the same float of that width
        np.testing.assert_array_equal(np.array(output["data"], dtype=values.dtype), values.ravel())
    else:
        assert output["data"] == data


def test_nested_data_is_accepted(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", "INT32"), "echo")
    answer = function.infer({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}]})
    assert answer.body["outputs"][0]["data"] == [1, 2, 3, 4]


def test_multi_input_model(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.two_inputs(tmp_path / "m.onnx"), "multi")
    answer = function.infer(
        {
            "inputs": [
                {"name": "k", "shape": [2], "datatype": "INT64", "data": [5, -1]},
                {"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]},
                {"name": "b", "shape": [2, 3], "datatype": "FP32", "data": [0.5] * 6},
            ]
        }
    )
    assert answer.status == 200, answer.body
    outputs = {o["name"]: o["data"] for o in answer.body["outputs"]}
    assert outputs == {"sum": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5], "scaled": [10, -2]}


def test_string_input(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", "BYTES"), "text")
    answer = function.infer(
        {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "BYTES", "data": ["héllo wörld", ""]}]}
    )
    assert answer.status == 200
    assert answer.body["outputs"][0] == {"name": "y", "datatype": "BYTES", "shape": [1, 2], "data": ["héllo wörld", ""]}


@pytest.mark.parametrize("datatype", DATATYPES)
def test_binary_tensor_extension_round_trips(deploy: Any, tmp_path: Path, datatype: str) -> None:
    """Requests and responses encoded by tritonclient itself (binary tensors after the JSON header)."""
    function = deploy(builders.identity(tmp_path / "m.onnx", datatype), "echo")
    values = builders.random_values(datatype, (3, 2), seed=1)
    tensor = triton.InferInput("x", [3, 2], datatype)
    tensor.set_data_from_numpy(values, binary_data=True)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=[triton.InferRequestedOutput("y", binary_data=True)]
    )
    event = rest_event("POST", "/v2/models/echo/infer", body, content_type="application/octet-stream", base64_body=True)
    event["headers"]["Inference-Header-Content-Length"] = str(header_length)

    response = function.module.lambda_handler(event, Context())

    assert response["statusCode"] == 200, response["body"]
    raw = base64.b64decode(response["body"])
    headers = {k.lower(): v[0] for k, v in response["multiValueHeaders"].items()}
    result = triton.InferResult.from_response_body(raw, header_length=int(headers["inference-header-content-length"]))
    output = result.as_numpy("y")
    if datatype == "BYTES":  # tritonclient hands BYTES back as bytes objects
        output = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(output)
    np.testing.assert_array_equal(output, values)


def test_binary_data_size_must_match_the_shape(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", "FP32"), "echo")
    tensor = triton.InferInput("x", [2, 2], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 2), dtype=np.float32), binary_data=True)
    tensor.set_shape([3, 2])  # the header now claims more values than the binary data holds
    body, header_length = triton.InferenceServerClient.generate_request_body([tensor])
    event = rest_event("POST", "/v2/models/echo/infer", body, content_type="application/octet-stream", base64_body=True)
    event["headers"]["Inference-Header-Content-Length"] = str(header_length)

    answer = function.invoke(event)

    assert answer.status == 400
    assert "binary data holds 16 bytes but its shape and FP32 need 24" in answer.error
