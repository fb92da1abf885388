"""Small real ONNX models for tests, built with onnx.helper (no training, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = [helper.make_opsetid("", 17)]

ELEMENT_TYPES = {
    "BOOL": TensorProto.BOOL,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def identity(
    path: Path,
    datatype: str,
    shape: list[int | str | None] | None = None,
    *,
    metadata: dict[str, str] | None = None,
) -> Path:
    """y = x for one datatype, shape [batch, 2] unless given; ``metadata`` becomes the model's metadata_props."""
    shape = shape or ["batch", 2]
    x = helper.make_tensor_value_info("x", ELEMENT_TYPES[datatype], shape)
    y = helper.make_tensor_value_info("y", ELEMENT_TYPES[datatype], shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], f"identity_{datatype}", [x], [y])
    model = helper.make_model(graph, opset_imports=OPSET)
    helper.set_model_props(model, metadata or {})
    return save(model, path)


def unranked_identity(path: Path, datatype: str = "FP32") -> Path:
    """y = x where x has no shape at all in the graph (unknown rank): onnxruntime runs it on any rank.

    onnx.checker refuses a graph input without a shape, onnxruntime serves it (microsoft/onnxruntime#11891), so
    this model is written unchecked.
    """
    x = helper.make_tensor_value_info("x", ELEMENT_TYPES[datatype], None)
    y = helper.make_tensor_value_info("y", ELEMENT_TYPES[datatype], None)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "unranked", [x], [y])
    path.write_bytes(helper.make_model(graph, opset_imports=OPSET).SerializeToString())
    return path


TEXT_VOCABULARY = ["great", "good", "fine", "bad", "awful"]


def text_classifier(path: Path) -> Path:
    """A bag-of-words sentiment model: BYTES words [batch, words] -> TF counts -> scores [batch, 2] -> label.

    TfIdfVectorizer takes strings in onnxruntime, and its kernel refuses a zero-row batch at run time.
    """
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", "words"])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [5, 2], [1, 0, 1, 0, 0.5, 0.5, 0, 1, 0, 1])
    nodes = [
        helper.make_node(
            "TfIdfVectorizer",
            ["text"],
            ["counts"],
            mode="TF",
            min_gram_length=1,
            max_gram_length=1,
            max_skip_count=0,
            ngram_counts=[0],
            ngram_indexes=list(range(len(TEXT_VOCABULARY))),
            pool_strings=TEXT_VOCABULARY,
        ),
        helper.make_node("MatMul", ["counts", "w"], ["scores"]),
        helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(nodes, "text_classifier", [text], [label, scores], initializer=[weights])
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def imputer(path: Path) -> Path:
    """y = x with NaN replaced by 0 (FP32 [batch, 2]): a model that takes missing values as NaN, and says so in
    its metadata (``modelrail.non_finite_inputs``)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("IsNaN", ["x"], ["missing"]), helper.make_node("Where", ["missing", "zero", "x"], ["y"])]
    graph = helper.make_graph(nodes, "imputer", [x], [y], initializer=[zero])
    model = helper.make_model(graph, opset_imports=OPSET)
    helper.set_model_props(model, {"modelrail.non_finite_inputs": "x"})
    return save(model, path)


def two_inputs(path: Path) -> Path:
    """sum = a + b (FP32 [batch, 3]); scaled = k * 2 (INT64 [batch]): two inputs of different types."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, ["batch"])
    total = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 3])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.INT64, ["batch"])
    two = helper.make_tensor("two", TensorProto.INT64, [], [2])
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["k", "two"], ["scaled"])],
        "two_inputs",
        [a, b, k],
        [total, scaled],
        initializer=[two],
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def square_root(path: Path) -> Path:
    """y = sqrt(x): fine on non-negative inputs, NaN on negative ones (a model that breaks on some traffic)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "sqrt", [x], [y])
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def fails_at_run(path: Path) -> Path:
    """Reshapes [batch, 4] to a fixed [2, 2]: loads fine, and onnxruntime fails at run time unless batch is 1."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    target = helper.make_tensor("target", TensorProto.INT64, [2], [2, 2])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "target"], ["y"])], "fails_at_run", [x], [y], initializer=[target]
    )
    return save(helper.make_model(graph, opset_imports=OPSET), path)


def fixed_shape(path: Path) -> Path:
    """y = x with a fully fixed shape [1, 3, 2]."""
    return identity(path, "FP32", [1, 3, 2])


def random_values(datatype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if datatype == "BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    if datatype == "BYTES":
        return np.array([f"token-{i}-é" for i in range(int(np.prod(shape)))], dtype=object).reshape(shape)
    from functions.inference.datatypes import OIP_TO_NUMPY

    dtype = OIP_TO_NUMPY[datatype]
    if dtype.kind == "f":
        return rng.normal(0, 100, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
