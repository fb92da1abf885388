"""Every way a request or a deployment can go wrong: the right status, a JSON error naming the fault, metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from functions.acceptance.events import response_headers
from tests import builders
from tests.functional.conftest import BUCKET, IRIS, upload
from tests.utils import Context, metric_values, rest_event


def tensor(data: Any, shape: list[int], datatype: str = "FP32", name: str = "float_input") -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


@pytest.fixture
def iris(deploy: Any) -> Any:
    return deploy(IRIS, "iris", MAX_BATCH_ROWS="8")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({}, "'inputs' is required"),
        ({"inputs": []}, "'inputs' is empty; model 'iris' expects float_input (FP32, shape [-1, 4])"),
        ({"inputs": [{"shape": [1, 4]}]}, "inputs[0]: 'name' is required"),
        (tensor([1, 2, 3, 4], [1, 4], name="features"), "unknown input 'features': model 'iris' expects float_input"),
        (tensor([1, 2, 3, 4], [1, 4], "FP64"), "input 'float_input' has datatype FP64; model 'iris' expects FP32"),
        (tensor([1, 2, 3, 4], [1, 4], "FLOAT"), "datatype 'FLOAT' is not one of BOOL"),
        (tensor([1, 2, 3, 4], [4]), "has shape [4] (rank 1); model 'iris' expects rank 2"),
        (tensor([1, 2, 3], [1, 3]), "has 3 at dimension 1 of shape [1, 3]; model 'iris' expects 4"),
        (tensor([1, 2, 3, 4, 5], [1, 4]), "'data' holds 5 values but its shape needs 4"),
        (tensor(["a", "b", "c", "d"], [1, 4]), "input 'float_input' is FP32: 'data' must hold numbers only"),
        (tensor([[1, 2], [3]], [1, 4]), "ragged"),
        (tensor(7, [1, 4]), "'data' must be a JSON array"),
        (tensor([1, 2, 3, 4], [1, -4]), "'shape' must be an array of non-negative integers"),
        ({**tensor([1, 2, 3, 4], [1, 4]), "outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
        ({**tensor([1, 2, 3, 4], [1, 4]), "id": 5}, "'id' must be a string"),
    ],
)
def test_bad_requests_are_400_naming_the_fault(iris: Any, capsys: Any, body: Any, expected: str) -> None:
    answer = iris.infer(body)

    assert answer.status == 400
    assert expected in answer.error
    assert answer.headers["x-model-version"] == "1"
    printed = capsys.readouterr().out
    assert metric_values(printed, "ClientErrors") == [1.0]
    assert metric_values(printed, "ModelErrors") == [0.0]


def test_missing_input_of_multi_input_model(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.two_inputs(tmp_path / "m.onnx"), "multi")
    answer = function.infer({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert answer.status == 400
    assert "missing input 'b'" in answer.error


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("UINT8", [1, 256], "value 256 is out of range for UINT8"),
        ("INT8", [-129, 0], "value -129 is out of range for INT8"),
        ("INT32", [1.5, 2], "'data' must hold integers only"),
        ("BOOL", [1, 0], "'data' must hold true/false only"),
        ("BYTES", [1, 2], "'data' must hold strings only"),
    ],
)
def test_values_that_do_not_fit_the_datatype(
    deploy: Any, tmp_path: Path, datatype: str, data: list[Any], expected: str
) -> None:
    function = deploy(builders.identity(tmp_path / "m.onnx", datatype, ["batch"]), "echo")
    answer = function.infer(tensor(data, [2], datatype, name="x"))
    assert answer.status == 400
    assert expected in answer.error


def test_fixed_dimensions_are_checked(deploy: Any, tmp_path: Path) -> None:
    function = deploy(builders.fixed_shape(tmp_path / "m.onnx"), "fixed")
    answer = function.infer(tensor(list(range(12)), [2, 3, 2], name="x"))
    assert answer.status == 400
    assert "has 2 at dimension 0 of shape [2, 3, 2]; model 'fixed' expects 1" in answer.error
    assert function.infer(tensor(list(range(6)), [1, 3, 2], name="x")).status == 200


def test_batch_over_the_row_limit_is_413(iris: Any) -> None:
    answer = iris.infer(tensor([1.0] * 36, [9, 4]))
    assert answer.status == 413
    assert "9 rows; this deployment accepts at most 8" in answer.error
    assert iris.infer(tensor([1.0] * 32, [8, 4])).status == 200


def test_unknown_model_version_and_route_are_404(iris: Any) -> None:
    assert iris.call("POST", "/v2/models/mnist/infer", tensor([1] * 4, [1, 4])).status == 404
    wrong_version = iris.call("POST", "/v2/models/iris/versions/3/infer", tensor([1] * 4, [1, 4]))
    assert wrong_version.status == 404
    assert "no version '3'" in wrong_version.error
    unknown = iris.call("GET", "/v3/anything")
    assert unknown.status == 404
    assert "no route /v3/anything" in unknown.error


def test_wrong_method_is_405_with_allow(iris: Any) -> None:
    answer = iris.call("GET", "/v2/models/iris/infer")
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"
    assert "GET is not allowed" in answer.error
    assert iris.call("DELETE", "/v2/models/iris").status == 405


def test_non_json_content_type_is_415(iris: Any) -> None:
    answer = iris.infer("a=1", content_type="application/x-www-form-urlencoded")
    assert answer.status == 415
    assert "send application/json" in answer.error
    assert iris.infer(tensor([1] * 4, [1, 4]), content_type=None).status == 200
    assert iris.infer(tensor([1] * 4, [1, 4]), content_type="application/json; charset=utf-8").status == 200


def test_model_fault_is_500_and_counted(deploy: Any, tmp_path: Path, capsys: Any) -> None:
    function = deploy(builders.fails_at_run(tmp_path / "m.onnx"), "reshaper")
    capsys.readouterr()
    answer = function.infer(tensor([1.0] * 8, [2, 4], name="x"))

    assert answer.status == 500
    assert "model 'reshaper' version 1 failed" in answer.error
    printed = capsys.readouterr().out
    assert metric_values(printed, "ModelErrors") == [1.0]
    assert metric_values(printed, "ClientErrors") == [0.0]


def test_non_finite_output_is_a_model_fault(deploy: Any, tmp_path: Path, capsys: Any) -> None:
    function = deploy(builders.square_root(tmp_path / "m.onnx"), "root")
    assert function.infer(tensor([4.0, 9.0], [1, 2], name="x")).body["outputs"][0]["data"] == [2.0, 3.0]
    capsys.readouterr()

    answer = function.infer(tensor([4.0, -1.0], [1, 2], name="x"))

    assert answer.status == 500
    assert "1 non-finite value(s) (NaN/Inf) in output 'y'" in answer.error
    printed = capsys.readouterr().out
    assert metric_values(printed, "NonFiniteOutputs") == [1.0]
    assert metric_values(printed, "ModelErrors") == [0.0]


def test_tampered_artifact_means_503_everywhere(deploy: Any, s3: Any, caplog: Any) -> None:
    uri, sha256 = upload(s3, IRIS, "tampered")
    s3.put_object(Bucket=BUCKET, Key=uri.split("/", 3)[3], Body=IRIS.read_bytes() + b"\x00")
    function = deploy(IRIS, "iris", uri=uri, sha256=sha256)

    answer = function.infer(tensor([1] * 4, [1, 4]))

    assert answer.status == 503
    assert f"MODEL_SHA256 pins {sha256}" in answer.error
    assert function.call("GET", "/v2/health/ready").status == 503
    assert function.call("GET", "/v2/models/iris/ready").body["ready"] is False
    assert function.call("GET", "/v2/health/live").status == 200
    record = next(r for r in caplog.records if r.getMessage() == "model not served")
    assert record.levelname == "ERROR"
    assert "refusing to serve it" in record.cause


def test_missing_artifact_means_503(deploy: Any) -> None:
    function = deploy(IRIS, "iris", uri=f"s3://{BUCKET}/models/iris/gone.onnx")
    answer = function.infer(tensor([1] * 4, [1, 4]))
    assert answer.status == 503
    assert f"s3://{BUCKET}/models/iris/gone.onnx does not exist" in answer.error


def test_unreadable_model_means_503(deploy: Any, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf model" * 10)
    function = deploy(garbage, "broken")
    answer = function.infer(tensor([1] * 4, [1, 4]))
    assert answer.status == 503
    assert "onnxruntime cannot load" in answer.error
    assert hashlib.sha256(garbage.read_bytes()).hexdigest()[:12] in answer.error


def test_invalid_environment_means_503_naming_the_variable(deploy: Any) -> None:
    function = deploy(IRIS, "iris", sha256="not-a-digest")
    answer = function.infer(tensor([1] * 4, [1, 4]))
    assert answer.status == 503
    assert "MODEL_SHA256: expected 64 hexadecimal digits, got 'not-a-digest'" in answer.error
    assert "retrying" not in answer.error  # a configuration fault is final: only a new deployment fixes it


GET_ROUTES = [
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/iris",
    "/v2/models/iris/versions/1",
    "/v2/models/iris/ready",
    "/v2/models/iris/versions/1/ready",
    "/v1/models/iris",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_like_get_without_a_body(iris: Any, path: str) -> None:
    # The API's ANY methods pass HEAD on to the function, and HEAD is GET without the body (RFC 9110, 9.3.2):
    # load balancers and uptime checks probe with it. It was answered 405.
    get = iris.module.lambda_handler(rest_event("GET", path), Context())
    head = iris.module.lambda_handler(rest_event("HEAD", path), Context())

    assert head["statusCode"] == get["statusCode"] == 200
    assert head["body"] == ""
    assert response_headers(head)["content-type"] == response_headers(get)["content-type"]
    assert response_headers(head)["x-model-version"] == "1"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready"])
def test_other_methods_on_health_routes_are_405_allowing_get_and_head(iris: Any, path: str, method: str) -> None:
    answer = iris.call(method, path, {})
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"
    assert f"{method} is not allowed on {path}" in answer.error


def test_head_on_an_inference_route_is_405_without_a_body(iris: Any) -> None:
    response = iris.module.lambda_handler(rest_event("HEAD", "/v2/models/iris/infer"), Context())
    assert response["statusCode"] == 405
    assert response_headers(response)["allow"] == "POST"
    assert response["body"] == ""


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_verb_this_endpoint_lacks_is_404_not_405(iris: Any, method: str) -> None:
    # KServe's v1 protocol has POST /v1/models/<name>:explain; this endpoint has no such route. Powertools' <name>
    # matches ':' too, so the path was taken for model 'iris:explain' and answered 405 "use GET".
    answer = iris.call(method, "/v1/models/iris:explain", {"instances": [[1, 2, 3, 4]]})
    assert answer.status == 404
    assert "no route" in answer.error
    assert "allow" not in answer.headers
