"""Open Inference Protocol datatypes and their ONNX and numpy counterparts."""

from __future__ import annotations

import numpy as np

# ONNX Runtime's type strings (``NodeArg.type``) -> Open Inference Protocol datatype.
ONNX_TO_OIP = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

OIP_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

DATATYPES = tuple(OIP_TO_NUMPY)

# A tensor of at most this many values is a "few numbers" (one row of features): protocol.to_array decodes it its own
# way (np.array of the list, ints converted by numpy), and fastjson leaves it to that path. Larger float tensors are
# converted through doubles on every path.
SMALL_TENSOR = 64

# The largest finite magnitude of each float datatype, as a Python float.
FLOAT_BOUNDS = {d: float(np.finfo(t).max) for d, t in OIP_TO_NUMPY.items() if t.kind == "f"}


def floats_within_range(doubles: np.ndarray, datatype: str) -> np.ndarray | None:
    """float64 values as the float datatype's array, or None when one is outside its finite range. Every value is
    within +-bound exactly when the largest is at most bound and the smallest at least -bound (NaN fails both
    comparisons): then the cast cannot overflow to inf."""
    bound = FLOAT_BOUNDS[datatype]
    if not (doubles.max() <= bound and doubles.min() >= -bound):
        return None
    target = OIP_TO_NUMPY[datatype]
    return doubles if target == doubles.dtype else doubles.astype(target)


_NUMPY_TO_OIP = {dtype: name for name, dtype in OIP_TO_NUMPY.items() if dtype.kind != "O"}


def oip_datatype_of(array: np.ndarray) -> str:
    """The Open Inference Protocol datatype of a numpy array produced by a model."""
    if array.dtype.kind in "OUS":
        return "BYTES"
    name = _NUMPY_TO_OIP.get(array.dtype)  # a dtype hashes as it compares: '<f4' and '=f4' are one key
    if name is None:
        raise TypeError(f"no Open Inference Protocol datatype for numpy dtype {array.dtype}")
    return name
