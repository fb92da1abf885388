"""Build the rehearsal's candidate versions of the iris model, reproducibly (run after train.py).

    .venv/bin/python models/iris/candidates.py

Writes models/iris-candidates/<name>/ bundles, each named "iris" (a new version of the same model) with the
sample's acceptance set and settings:
- retrained: retrained with other regularisation; same labels, probabilities within the set's tolerance;
- shuffled: trained on shuffled labels; wrong answers, which the acceptance gate must block;
- nan-tail: the sample model, except that it outputs NaN probabilities for flowers with petals longer than
  6.0 cm. The acceptance set's longest petal is 5.9 cm, so it passes the gate and then fails on that part of
  real traffic: what only the canary's alarms can catch.
- skewed: the sample model with the versicolor intercept raised, so it calls many more flowers versicolor; its
  acceptance set was regenerated from its own answers (a team testing a model against itself). It passes its
  gate with the same errors and latency as the baseline; only comparing its predictions with the baseline's on
  the same traffic (the canary analysis) shows it.
- label-swap: the sample model with versicolor and virginica swapped (labels and probability keys alike); its
  acceptance set is regenerated from its own answers, so it passes its own gate, and the prediction mix barely
  moves (the two classes trade their shares). Only asking it what the live version was asked (replay, the paired
  canary analysis) shows that it answers otherwise on most of those flowers.

retrained, skewed and label-swap also carry a baseline.json, as a bundle the drift monitor watches must (the
canary analysis runs only for those): after this script,
`python -m modelrail baseline --data models/iris/reference.csv <bundle>`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).parent
OUT = HERE.parent / "iris-candidates"
PETAL_LIMIT_CM = 6.0
SEED = 7  # train.py's split


def export(model: object, doc: str) -> onnx.ModelProto:
    exported = to_onnx(
        model, initial_types=[("float_input", FloatTensorType([None, 4]))], target_opset={"": 17, "ai.onnx.ml": 3}
    )
    exported.doc_string = doc
    opsets = sorted(exported.opset_import, key=lambda o: o.domain)  # stable bytes (see train.py)
    del exported.opset_import[:]
    exported.opset_import.extend(opsets)
    return exported


def nan_tail(model: onnx.ModelProto) -> onnx.ModelProto:
    """Multiply the probabilities by NaN on rows whose petal length (feature 2) exceeds PETAL_LIMIT_CM."""
    graph = model.graph
    zipmap = next(n for n in graph.node if n.op_type == "ZipMap")
    probabilities = zipmap.input[0]
    graph.initializer.extend(
        [
            helper.make_tensor("petal_index", TensorProto.INT64, [1], [2]),
            helper.make_tensor("petal_limit", TensorProto.FLOAT, [], [PETAL_LIMIT_CM]),
            helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]),
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        ]
    )
    nodes = [
        helper.make_node("Gather", ["float_input", "petal_index"], ["petal"], axis=1),
        helper.make_node("Greater", ["petal", "petal_limit"], ["too_long"]),
        helper.make_node("Where", ["too_long", "nan", "one"], ["poison"]),
        helper.make_node("Mul", [probabilities, "poison"], ["poisoned_probabilities"]),
    ]
    zipmap.input[0] = "poisoned_probabilities"
    position = list(graph.node).index(zipmap)
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)
    model.doc_string += f" (NaN probabilities when petal length > {PETAL_LIMIT_CM} cm)"
    onnx.checker.check_model(model)
    return model


def skewed(model: onnx.ModelProto, shift: float = 5.0) -> onnx.ModelProto:
    """Raise class 1's intercept in the LinearClassifier by ``shift``."""
    classifier = next(n for n in model.graph.node if n.op_type == "LinearClassifier")
    intercepts = next(a for a in classifier.attribute if a.name == "intercepts")
    intercepts.floats[1] += shift
    model.doc_string += f" (versicolor intercept +{shift})"
    return model


def label_swap(model: onnx.ModelProto, first: int = 1, second: int = 2) -> onnx.ModelProto:
    """Swap class labels ``first`` and ``second`` in the LinearClassifier and in the ZipMap alike."""
    for node, attribute in (("LinearClassifier", "classlabels_ints"), ("ZipMap", "classlabels_int64s")):
        classifier = next(n for n in model.graph.node if n.op_type == node)
        labels = next(a for a in classifier.attribute if a.name == attribute)
        i, j = list(labels.ints).index(first), list(labels.ints).index(second)
        labels.ints[i], labels.ints[j] = second, first
    model.doc_string += f" (labels {first} and {second} swapped)"
    onnx.checker.check_model(model)
    return model


def own_acceptance_set(model: onnx.ModelProto) -> str:
    """The sample's acceptance inputs with ``model``'s own answers as the expectation."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    lines = []
    for line in (HERE / "acceptance.jsonl").read_text().splitlines():
        case = json.loads(line)
        features = np.array(case["inputs"][0]["data"], dtype=np.float32).reshape(1, 4)
        label, probabilities = session.run(None, {"float_input": features})
        case["expected"] = {
            "output_label": [int(label[0])],
            "output_probability": [{str(k): round(float(v), 6) for k, v in probabilities[0].items()}],
        }
        lines.append(json.dumps(case))
    return "\n".join(lines) + "\n"


def write(name: str, model: onnx.ModelProto, description: str, acceptance: str | None = None) -> None:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    if acceptance is None:
        shutil.copy(HERE / "acceptance.jsonl", folder / "acceptance.jsonl")
    else:
        (folder / "acceptance.jsonl").write_text(acceptance)
    settings = json.loads((HERE / "modelrail.json").read_text())
    settings.update(name="iris", description=description)
    (folder / "modelrail.json").write_text(json.dumps(settings, indent=4) + "\n")


def main() -> None:
    iris = load_iris()
    x, y = iris.data.astype(np.float32), iris.target.astype(np.int64)

    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    retrained = make_pipeline(StandardScaler(), LogisticRegression(C=1.2, max_iter=500)).fit(x_train, y_train)
    write("retrained", export(retrained, "iris, retrained with C=1.2"), "iris retrained: a good new version")

    labels = np.random.default_rng(3).permutation(y)
    shuffled = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=3)).fit(x, labels)
    write("shuffled", export(shuffled, "iris trained on shuffled labels"), "iris with wrong answers")

    write(
        "nan-tail",
        nan_tail(onnx.load(HERE / "model.onnx")),
        f"iris that emits NaN for petals longer than {PETAL_LIMIT_CM} cm",
    )
    tilted = skewed(onnx.load(HERE / "model.onnx"))
    write("skewed", tilted, "iris that calls many more flowers versicolor", own_acceptance_set(tilted))
    swapped = label_swap(onnx.load(HERE / "model.onnx"))
    write("label-swap", swapped, "iris with versicolor and virginica swapped", own_acceptance_set(swapped))
    print(f"wrote {', '.join(sorted(p.name for p in OUT.iterdir()))} under {OUT}")


if __name__ == "__main__":
    main()
