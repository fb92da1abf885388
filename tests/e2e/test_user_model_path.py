"""A user's own model, first hour, as the README's "Working with a model" walks it: a classifier this test trains
(not the sample) goes `init` with a CSV -> `validate` -> `serve --capture` (requests over HTTP on loopback) ->
`drift` on that capture with a PNG -> `rehearse` of a retrained second version. Each step is the real command in
its own process; each exits 0 and prints the next useful command."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np

from tests.user_model import FEATURES, LABEL, dataset, train, write_csv

ROOT = Path(__file__).resolve().parents[2]


def modelrail(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelrail", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def next_commands(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("next:") or line.strip().startswith("python -m")]


def test_a_users_model_from_init_to_a_rehearsed_second_version(tmp_path: Path) -> None:
    x, y = dataset(rows=500)
    train_x, train_y, live_x = x[:400], y[:400], x[400:]
    v1 = train(tmp_path / "cancer-v1.onnx", train_x, train_y)
    # retrained with a little less regularization: it answers as v1 does on nearly every request, so the gate's
    # replay of v1's captured traffic (98% agreement by default) lets it through
    v2 = train(tmp_path / "cancer-v2.onnx", train_x, train_y, c=0.8)
    data = write_csv(tmp_path / "data.csv", train_x, train_y)
    bundle, candidate, capture = tmp_path / "cancer", tmp_path / "cancer-v2", tmp_path / "capture"

    # init: the bundle from the model and the CSV; the labels make an accuracy set
    made = modelrail("init", str(bundle), "--model", str(v1), "--data", str(data), "--labels", LABEL)
    assert made.returncode == 0, made.stderr
    assert "with their true labels; this model gets" in made.stdout
    assert f"python -m modelrail validate {bundle}" in made.stdout
    assert json.loads((bundle / "baseline.json").read_text())["feature_names"]["features[3]"] == "worst area"

    # validate: the acceptance gate, locally
    validated = modelrail("validate", str(bundle))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "PASSED" in validated.stdout
    assert f"next: python -m modelrail serve {bundle} --capture capture/" in validated.stdout

    # serve --capture: the HTTP API on loopback; every answered request lands in the capture folder
    server = subprocess.Popen(
        [sys.executable, "-m", "modelrail", "serve", str(bundle), "--port", "0", "--capture", str(capture)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = [""]
        reader = threading.Thread(target=lambda: url.__setitem__(0, server.stdout.readline().strip()), daemon=True)
        reader.start()
        reader.join(timeout=120)
        assert url[0].startswith("http://127.0.0.1:"), "serve printed no URL"
        for begin in range(0, len(live_x), 5):  # 20 requests of 5 rows: the traffic of the training distribution
            rows = live_x[begin : begin + 5]
            body = {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                                "data": rows.ravel().tolist()}]}  # fmt: skip
            request = urllib.request.Request(
                f"{url[0]}/v2/models/cancer/infer", json.dumps(body).encode(), {"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert json.loads(answer.read())["model_version"] == "1"
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = server.communicate(timeout=120)
    assert server.returncode == 0, err
    assert f"next: python -m modelrail drift --baseline {bundle} --capture {capture}" in err
    objects = sorted(capture.rglob("*.gz"))
    assert objects, err
    assert all(o.relative_to(capture).parts[:3] == ("capture", "model=cancer", "version=1") for o in objects)
    records = [json.loads(line) for o in objects for line in gzip.decompress(o.read_bytes()).splitlines()]
    assert len(records) == 20
    assert {"model", "version", "time", "request_id", "inputs", "outputs", "excluded"} <= records[0].keys()
    captured = np.array([v for r in records for v in r["inputs"][0]["data"]], dtype=np.float32).reshape(-1, 6)
    assert sorted(map(tuple, captured)) == sorted(map(tuple, live_x))

    # drift on that capture, with a PNG: the CSV's column names in the table
    png = tmp_path / "drift.png"
    drifted = modelrail("drift", "--baseline", str(bundle), "--capture", str(capture), "--png", str(png))
    assert drifted.returncode == 0, drifted.stdout + drifted.stderr
    assert "100 rows" in drifted.stdout
    assert all(name in drifted.stdout for name in FEATURES)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"python -m modelrail rehearse --baseline {bundle} --candidate NEW" in drifted.stdout

    # the retrained second version: its own bundle, the same model name, rehearsed as the next version
    again = modelrail(
        "init", str(candidate), "--name", "cancer", "--model", str(v2), "--data", str(data), "--labels", LABEL
    )
    assert again.returncode == 0, again.stderr
    rehearsal_capture = tmp_path / "rehearsal-capture"
    rehearsed = modelrail(
        "rehearse", "--baseline", str(bundle), "--candidate", str(candidate), "--time-scale", "120",
        "--capture", str(rehearsal_capture), timeout=600,
    )  # fmt: skip
    assert rehearsed.returncode == 0, rehearsed.stdout[-3000:] + rehearsed.stderr
    assert "cancer -> cancer-v2: promoted (as expected)" in rehearsed.stdout
    assert f'next: deploy it: in cdk.json point the model\'s entry {{"bundle": "{bundle}"}}' in rehearsed.stdout
    # the rehearsal's own capture stream in the deployed layout: production's 5% sample of about 300 requests to
    # version 1 (version 2's few dozen may leave no record at 5%)
    versions = {o.relative_to(rehearsal_capture).parts[2] for o in rehearsal_capture.rglob("*.gz")}
    assert "version=1" in versions
    assert versions <= {"version=1", "version=2"}
    assert f"next: python -m modelrail drift --baseline {bundle} --capture {rehearsal_capture}" in rehearsed.stdout
    status = [line for line in rehearsed.stdout.splitlines() if line.startswith("  [t=")]
    assert status
    assert max(len(line) for line in status) < 160, max(status, key=len)
    assert all(next_commands(step) for step in (made.stdout, validated.stdout, err, drifted.stdout, rehearsed.stdout))
