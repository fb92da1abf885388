"""The benchmarked models and their requests: the iris sample bundle and a seeded 784->512->512->10 FP32 MLP.

Everything here is deterministic (fixed seeds), so two runs time the same bytes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
IRIS_BUNDLE = ROOT / "models" / "iris"
MLP_LAYERS = (784, 512, 512, 10)
# Tens of MB of initializers (784*4096 + 4096*2048 FP32 weights: 46 MB): big enough that the artifact fetch is
# six ranged GETs of 8 MB, so the bench and the tests see the concurrent fetch; never committed, always generated.
LARGE_MLP_LAYERS = (784, 4096, 2048, 10)
MLP_SEED = 20261128
INPUT_SEED = 7


def build_mlp(path: Path, layers: tuple[int, ...] = MLP_LAYERS) -> Path:
    """Write the MLP (Gemm+Relu, opset 17, input ``input`` FP32 [-1,784], output ``logits``) to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(MLP_SEED)
    nodes, initializers = [], []
    previous = "input"
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(layers)):
        # He-scaled weights keep activations finite and non-trivial through the ReLUs.
        weight = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        bias = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"W{layer}"), numpy_helper.from_array(bias, f"B{layer}")]
        last = layer == len(layers) - 2
        gemm_out = "logits" if last else f"gemm{layer}"
        nodes.append(helper.make_node("Gemm", [previous, f"W{layer}", f"B{layer}"], [gemm_out], name=f"gemm{layer}"))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"relu{layer}"], name=f"relu{layer}"))
            previous = f"relu{layer}"
    graph = helper.make_graph(
        nodes,
        "mlp_" + "_".join(map(str, layers)),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", layers[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", layers[-1]])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelrail-bench")
    model.ir_version = 8  # what onnxruntime releases of the last years all read
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


@dataclass(frozen=True)
class Case:
    """One warm measurement: a model, the tensor sent to it, and how many timed iterations."""

    label: str
    model: str  # the model's name in the API
    input_name: str
    rows: int
    features: int
    iterations: int
    warmup: int

    def tensor(self) -> np.ndarray:
        rng = np.random.default_rng(INPUT_SEED + self.rows)
        if self.model == "iris":
            # Plausible iris measurements (cm), so the classifier sees the kind of input it was trained on.
            low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
            return (low + rng.random((self.rows, self.features)) * (high - low)).astype(np.float32)
        return rng.random((self.rows, self.features), dtype=np.float32)  # pixel intensities in [0, 1)


def v2_request(case: Case, tensor: np.ndarray) -> bytes:
    """The Open Inference Protocol v2 body a numpy client sends (``tolist()`` floats, stdlib json)."""
    body: dict[str, Any] = {
        "id": f"bench-{case.label}",
        "inputs": [
            {"name": case.input_name, "shape": list(tensor.shape), "datatype": "FP32", "data": tensor.ravel().tolist()}
        ],
    }
    return json.dumps(body).encode()


def v2_binary_request(case: Case, tensor: np.ndarray) -> tuple[bytes, bytes]:
    """The same request with the binary tensor data extension: the JSON header, and the raw FP32 bytes."""
    data = np.ascontiguousarray(tensor, dtype="<f4").tobytes()
    header = {
        "id": f"bench-{case.label}",
        "inputs": [
            {
                "name": case.input_name,
                "shape": list(tensor.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(data)},
            }
        ],
    }
    return json.dumps(header).encode(), data
