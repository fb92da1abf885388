"""The demo: the sample model served on the embedded AWS, asked real questions over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from spec.bundle import ModelBundle

from .local.environment import LocalEnvironment


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def run_demo(bundle_path: str) -> int:
    bundle = ModelBundle.load(bundle_path)
    name = bundle.name
    with LocalEnvironment([bundle]) as env:
        print(
            f"serving '{name}' (sha256 {bundle.sha256()[:12]}...) at {env.url}, artifact fetched from the "
            "embedded S3 and verified\n"
        )
        steps: list[tuple[str, str, str, Any]] = [
            ("server ready?", "GET", "/v2/health/ready", None),
            ("model signature", "GET", f"/v2/models/{name}", None),
            (
                "classify two flowers (Open Inference Protocol v2)",
                "POST",
                f"/v2/models/{name}/infer",
                {
                    "id": "demo-1",
                    "inputs": [
                        {
                            "name": "float_input",
                            "shape": [2, 4],
                            "datatype": "FP32",
                            "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
                        }
                    ],
                    "outputs": [{"name": "output_label"}],
                },
            ),
            (
                "class probabilities (ZipMap output, as JSON maps)",
                "POST",
                f"/v2/models/{name}/infer",
                {
                    "inputs": [
                        {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.9, 3.0, 4.2, 1.5]}
                    ],
                    "outputs": [{"name": "output_probability"}],
                },
            ),
            ("KServe v1 predict", "POST", f"/v1/models/{name}:predict", {"instances": [[6.3, 3.3, 6.0, 2.5]]}),
            (
                "a client mistake: 3 features instead of 4",
                "POST",
                f"/v2/models/{name}/infer",
                {
                    "inputs": [{"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [5.1, 3.5, 1.4]}],
                },
            ),
        ]
        failures = 0
        for title, method, path, body in steps:
            status, headers, answer = call(env.url, method, path, body)
            version = headers.get("x-model-version", "-")
            print(f"== {title}\n   {method} {path} -> {status} (x-model-version: {version})")
            print("   " + json.dumps(answer)[:400])
            expected_error = "mistake" in title
            if (status >= 400) != expected_error:
                failures += 1
        print(f"\n{len(steps) - failures}/{len(steps)} answers as expected; stopped the local environment")
    return 1 if failures else 0
