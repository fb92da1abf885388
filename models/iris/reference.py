"""Write the sample's reference data (the training split of train.py) and compute its drift baseline.

    .venv/bin/python models/iris/reference.py

Writes reference.csv (the four measurements in the model's input order, a header naming them) and
baseline.json beside this file. The CSV is committed, so `python -m modelrail baseline models/iris --data
models/iris/reference.csv` works without scikit-learn.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))
SEED = 7  # train.py's split: the reference is exactly what the model was trained on

from modelrail.baseline import write_baseline  # noqa: E402
from spec.bundle import ModelBundle  # noqa: E402


def main() -> None:
    iris = load_iris()
    x = iris.data.astype(np.float32)
    y = iris.target.astype(np.int64)
    x_train, _, _, _ = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    with (HERE / "reference.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"])
        writer.writerows([[round(float(v), 4) for v in row] for row in x_train])
    path, baseline = write_baseline(ModelBundle.load(HERE), HERE / "reference.csv")
    print(f"wrote {HERE / 'reference.csv'} ({len(x_train)} rows) and {path} ({len(baseline['features'])} features)")


if __name__ == "__main__":
    main()
