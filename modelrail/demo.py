"""The tour: a bundle (the sample by default) served on the embedded AWS, asked real questions over HTTP: requests
made from its acceptance set (or, without one, from its signature), a batch, KServe v1, a client mistake."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from functions.acceptance.gate import synthetic_inputs
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


def example_inputs(bundle: ModelBundle, metadata: dict[str, Any], rows: int = 1) -> list[dict[str, Any]]:
    """Inputs for ``rows`` rows: the bundle's acceptance cases (stacked), else zeros from the model's signature."""
    cases = [c.inputs for c in bundle.acceptance_cases()[:rows]]
    if not cases:
        return synthetic_inputs(metadata)
    if len(cases) < rows or any(
        len(t.get("shape") or []) < 1 or t["shape"][0] != 1 for inputs in cases for t in inputs
    ):
        return cases[0]
    return [
        {**first, "shape": [rows, *first["shape"][1:]], "data": [v for inputs in cases for v in _flat(inputs[i])]}
        for i, first in enumerate(cases[0])
    ]


def _flat(tensor: dict[str, Any]) -> list[Any]:
    data = tensor["data"]
    while data and isinstance(data[0], list):
        data = [v for row in data for v in row]
    return list(data)


def run_demo(bundle_path: str) -> int:
    bundle = ModelBundle.load(bundle_path)
    name = bundle.name
    with LocalEnvironment([bundle]) as env:
        print(
            f"serving '{name}' (sha256 {bundle.sha256()[:12]}...) at {env.url}, artifact fetched from the "
            "embedded S3 and verified\n"
        )
        _, _, metadata = call(env.url, "GET", f"/v2/models/{name}")
        one, two = example_inputs(bundle, metadata), example_inputs(bundle, metadata, rows=2)
        source = "from its acceptance set" if bundle.acceptance_path else "zeros shaped by its signature"
        outputs = [o["name"] for o in metadata.get("outputs", [])]
        steps: list[tuple[str, str, str, Any]] = [
            ("server ready?", "GET", "/v2/health/ready", None),
            ("model signature", "GET", f"/v2/models/{name}", None),
            (f"one request {source} (Open Inference Protocol v2)", "POST", f"/v2/models/{name}/infer",
             {"id": "tour-1", "inputs": one}),
            (f"a batch of {two[0]['shape'][0] if two and two[0].get('shape') else 1} rows, first output only",
             "POST", f"/v2/models/{name}/infer", {"inputs": two, "outputs": [{"name": outputs[0]}] if outputs else []}),
        ]  # fmt: skip
        if len(one) == 1 and one[0].get("shape") and one[0]["shape"][0] == 1:
            instance = _flat(one[0]) if len(one[0]["shape"]) > 1 else _flat(one[0])[0]
            steps.append(("KServe v1 predict", "POST", f"/v1/models/{name}:predict", {"instances": [instance]}))
        steps.append(
            (
                "a client mistake: an input the model does not have",
                "POST",
                f"/v2/models/{name}/infer",
                {"inputs": [{**one[0], "name": "no_such_input"}, *one[1:]]},
            )
        )
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
        print(f"next: python -m modelrail serve {bundle.root}   # the same API, until Ctrl-C")
    return 1 if failures else 0
