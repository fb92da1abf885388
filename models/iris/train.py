"""Train the sample iris classifier (scikit-learn) and export it to ONNX (skl2onnx), reproducibly.

    .venv/bin/python models/iris/train.py

Writes model.onnx and acceptance.jsonl beside this file. Same seed, same library versions, same bytes:
the sha256 that pins the artifact does not move unless the model does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).parent
SEED = 7


def main() -> None:
    iris = load_iris()
    x = iris.data.astype(np.float32)
    y = iris.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=SEED))
    model.fit(x_train, y_train)
    print(f"held-out accuracy: {model.score(x_test, y_test):.3f}")

    onnx_model = to_onnx(
        model,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onnx_model.doc_string = (
        "iris species from sepal and petal measurements (cm); labels 0 setosa, 1 versicolor, 2 virginica"
    )
    # skl2onnx lists opset imports in set order, which varies between runs: sort them so the bytes are stable.
    opsets = sorted(onnx_model.opset_import, key=lambda o: o.domain)
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(opsets)
    (HERE / "model.onnx").write_bytes(onnx_model.SerializeToString())

    # The acceptance set: held-out rows with the label and class probabilities the trained model must keep giving.
    labels = model.predict(x_test)
    probabilities = model.predict_proba(x_test)
    with (HERE / "acceptance.jsonl").open("w") as f:
        for row, label, p in zip(x_test, labels, probabilities, strict=True):
            case = {
                "inputs": [
                    {
                        "name": "float_input",
                        "shape": [1, 4],
                        "datatype": "FP32",
                        "data": [round(float(v), 4) for v in row],
                    }
                ],
                "expected": {
                    "output_label": [int(label)],
                    "output_probability": [{str(k): round(float(v), 6) for k, v in enumerate(p)}],
                },
            }
            f.write(json.dumps(case) + "\n")
    print(f"wrote {HERE / 'model.onnx'} and {len(labels)} acceptance cases")


if __name__ == "__main__":
    main()
