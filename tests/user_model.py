"""A user's own model, as the tests make it: scikit-learn trained on a synthetic dataset with named CSV columns,
exported with skl2onnx as models/iris/train.py does (not the sample)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["mean radius", "mean texture", "mean smoothness", "worst area", "worst symmetry", "cell count"]
LABEL = "diagnosis"


def dataset(rows: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=rows, n_features=len(FEATURES), n_informative=4, n_redundant=1, random_state=seed, class_sep=1.2
    )
    return x.astype(np.float32), y.astype(np.int64)


def train(path: Path, x: np.ndarray, y: np.ndarray, *, c: float = 1.0) -> Path:
    """Fit and export a classifier to ``path`` (``c``: regularization, so a retrained version differs a little)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500, random_state=0))
    model.fit(x, y)
    onnx_model = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_model.SerializeToString())
    return path


def write_csv(path: Path, x: np.ndarray, y: np.ndarray | None = None) -> Path:
    """The data with a header naming each column (and the label column, when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FEATURES + ([LABEL] if y is not None else []))
        for i, row in enumerate(x):
            writer.writerow([f"{float(v):.5g}" for v in row] + ([int(y[i])] if y is not None else []))
    return path
