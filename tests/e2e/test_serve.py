"""The local environment over HTTP: a protocol client unchanged, several models on one port, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as triton

from modelrail.local.environment import LocalEnvironment
from spec.bundle import ModelBundle
from tests import builders

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "models" / "iris"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    models = tmp_path_factory.mktemp("models")
    bundles = [
        ModelBundle.load(IRIS),
        ModelBundle.load(builders.two_inputs(models / "multi.onnx")),
        ModelBundle.load(builders.identity(models / "text.onnx", "BYTES")),
    ]
    with LocalEnvironment(bundles) as env:
        yield env


def test_triton_client_works_unchanged(environment: LocalEnvironment) -> None:
    client = triton.InferenceServerClient(url=environment.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    metadata = client.get_model_metadata("iris")
    assert metadata["inputs"][0]["name"] == "float_input"

    features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    tensor = triton.InferInput("float_input", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features, binary_data=False)
    result = client.infer(
        "iris",
        [tensor],
        outputs=[triton.InferRequestedOutput("output_label", binary_data=False)],
        request_id="triton-1",
    )

    assert result.as_numpy("output_label").tolist() == [0, 2]
    assert result.get_response()["id"] == "triton-1"
    assert result.get_response()["model_version"] == "1"


def test_several_models_on_one_port(environment: LocalEnvironment) -> None:
    client = triton.InferenceServerClient(url=environment.url.removeprefix("http://"))
    a = triton.InferInput("a", [1, 3], "FP32")
    a.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32), binary_data=False)
    b = triton.InferInput("b", [1, 3], "FP32")
    b.set_data_from_numpy(np.array([[10, 20, 30]], dtype=np.float32), binary_data=False)
    k = triton.InferInput("k", [1], "INT64")
    k.set_data_from_numpy(np.array([21], dtype=np.int64), binary_data=False)
    multi = client.infer(
        "multi", [a, b, k], outputs=[triton.InferRequestedOutput(n, binary_data=False) for n in ("sum", "scaled")]
    )
    assert multi.as_numpy("sum").tolist() == [[11, 22, 33]]
    assert multi.as_numpy("scaled").tolist() == [42]

    text = triton.InferInput("x", [1, 2], "BYTES")
    text.set_data_from_numpy(np.array([["ça va", "ok"]], dtype=object), binary_data=False)
    answer = client.infer("text", [text], outputs=[triton.InferRequestedOutput("y", binary_data=False)])
    assert answer.as_numpy("y").tolist() == [["ça va", "ok"]]

    ready = requests.get(f"{environment.url}/v2/health/ready", timeout=10).json()
    assert ready == {"ready": True, "models": {"iris": True, "multi": True, "text": True}}


def test_http_errors_reach_the_client_as_json(environment: LocalEnvironment) -> None:
    url = environment.url
    unknown = requests.post(f"{url}/v2/models/mnist/infer", json={"inputs": []}, timeout=10)
    assert unknown.status_code == 404
    assert "models: iris, multi, text" in unknown.json()["error"]
    bad = requests.post(f"{url}/v2/models/iris/infer", json={"inputs": [{"name": "float_input"}]}, timeout=10)
    assert bad.status_code == 400
    assert bad.json() == {"error": "input 'float_input': 'shape' is required (an array of non-negative integers)"}
    assert bad.headers["x-model-version"] == "1"
    v1 = requests.post(f"{url}/v1/models/iris:predict", json={"instances": [[6.3, 3.3, 6.0, 2.5]]}, timeout=10)
    assert v1.json() == {"predictions": [2]}


def test_serve_command_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "modelrail", "serve", str(IRIS), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = process.stdout.readline().strip() if process.stdout else ""
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        answer = requests.post(
            f"{url}/v2/models/iris/infer",
            json={
                "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
            },
            timeout=30,
        )
        assert answer.json()["outputs"][0]["data"] == [0]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/health/live", timeout=2)


def test_serve_refuses_a_missing_bundle() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelrail", "serve", "models/nope", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "models/nope: no such bundle" in result.stderr


def test_triton_client_with_its_binary_defaults(environment: LocalEnvironment) -> None:
    """tritonclient's defaults send and receive tensors as binary data after a JSON header; the one addition is
    the content type that API Gateway's binaryMediaTypes recognise."""
    client = triton.InferenceServerClient(url=environment.url.removeprefix("http://"))
    features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float32)
    tensor = triton.InferInput("float_input", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features)

    result = client.infer("iris", [tensor], headers={"Content-Type": "application/octet-stream"})

    assert result.as_numpy("output_label").tolist() == [0, 2, 1]
    probabilities = result.get_output("output_probability")
    assert probabilities["parameters"] == {"content_type": "json"}  # a sequence of maps has no binary form
    assert len(probabilities["data"]) == 3


def test_binary_tensors_sent_as_text_get_a_clear_415(environment: LocalEnvironment) -> None:
    client = triton.InferenceServerClient(url=environment.url.removeprefix("http://"))
    tensor = triton.InferInput("float_input", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    with pytest.raises(triton.InferenceServerException, match="must be sent as content-type application/octet-stream"):
        client.infer("iris", [tensor])
