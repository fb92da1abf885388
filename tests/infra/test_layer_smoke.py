"""The built layers as Lambda loads them: every shared object is one glibc maps on the layer's architecture, and
the x86_64 layer alone (beside the runtime's boto3) lets CPython 3.12 import every function and serve a model."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from functions.acceptance.events import response_body
from layers.build import LayerArtifact, build_layer
from modelrail.local.aws import ARTIFACT_BUCKET, CREDENTIALS, REGION, EmbeddedAWS
from tests.infra.conftest import ROOT

pytestmark = pytest.mark.infra

MACHINES = {"arm64": "EM_AARCH64", "x86_64": "EM_X86_64"}
# Lambda's page size, on arm64 as on x86_64; arm64 objects may still ask for a larger p_align (64 KiB).
PAGE_SIZE = 4096
SHARED_OBJECT = re.compile(r"\.so(\.[0-9.]+)?$")
# What the Lambda Python runtime provides beside the layer (boto3 and its dependencies), by top-level module.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six")
# What must come from the layer and from nowhere else.
FROM_THE_LAYER = {"numpy", "onnxruntime", "pydantic", "pydantic_core", "aws_lambda_powertools", "orjson", "simdjson"}
IRIS = ROOT / "models" / "iris" / "model.onnx"
FUNCTION_PACKAGES = ("inference", "acceptance", "monitor")


def python312() -> str | None:
    """pyenv's CPython 3.12 (CI machines have 3.12.1), the version Lambda runs the functions on."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    for root in filter(None, roots):
        found = sorted(glob.glob(f"{root}/versions/3.12*/bin/python3.12"))
        if found:
            return found[-1]
    return shutil.which("python3.12")


@pytest.mark.parametrize("architecture", sorted(MACHINES))
def test_every_shared_object_matches_the_architecture_and_maps_page_aligned(architecture: str) -> None:
    # The System V ABI (gABI, "Program Header"): "loadable process segments must have congruent values for p_vaddr
    # and p_offset, modulo the page size ... p_vaddr should equal p_offset, modulo p_align". glibc's elf/dl-load.c
    # refuses a PT_LOAD that breaks it, with "ELF load command address/offset not page-aligned" (or "not properly
    # aligned"), and numpy's import then fails in every function at init.
    layer = build_layer(architecture, log=lambda _: None)
    faults: list[str] = []
    with zipfile.ZipFile(layer.zip_path) as archive:
        objects = [n for n in archive.namelist() if SHARED_OBJECT.search(n)]
        assert any("/_multiarray_umath." in n for n in objects)
        assert any("/onnxruntime_pybind11_state." in n for n in objects)
        for name in objects:
            elf = ELFFile(io.BytesIO(archive.read(name)))
            if elf["e_machine"] != MACHINES[architecture]:
                faults.append(f"{name}: e_machine {elf['e_machine']}, expected {MACHINES[architecture]}")
            for index, segment in enumerate(elf.iter_segments()):
                if segment["p_type"] != "PT_LOAD":
                    continue
                offset, vaddr, align = segment["p_offset"], segment["p_vaddr"], max(segment["p_align"], 1)
                if offset % align != vaddr % align or offset % PAGE_SIZE != vaddr % PAGE_SIZE:
                    faults.append(f"{name}: PT_LOAD {index} p_offset {offset:#x} p_vaddr {vaddr:#x} p_align {align:#x}")
    assert not faults, "shared objects Lambda's loader would refuse:\n" + "\n".join(faults)


@pytest.fixture(scope="module")
def lambda_like(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """/opt/python (the x86_64 layer, unzipped alone) and the runtime's own boto3, as a Lambda would have them."""
    if python312() is None:
        pytest.skip("no CPython 3.12 on this machine (pyenv's 3.12.1 on CI): cannot import the layer as Lambda does")
    root = tmp_path_factory.mktemp("lambda")
    layer: LayerArtifact = build_layer("x86_64", log=lambda _: None)
    with zipfile.ZipFile(layer.zip_path) as archive:
        archive.extractall(root / "opt")
    # The runtime's boto3 and its dependencies are pure Python: this environment's copies stand in for them, and
    # only they are linked, so nothing else of this machine's site-packages can be imported.
    runtime = root / "runtime"
    runtime.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME_PROVIDED:
        source = site / name if (site / name).is_dir() else site / f"{name}.py"
        (runtime / source.name).symlink_to(source)
    return {"layer": root / "opt" / "python", "runtime": runtime, "root": root}


def function_code(package: str, destination: Path) -> Path:
    """functions/ with only ``package`` of the function packages, as infra/inference.py's functions_code ships it:
    the package's catalog.py (a symlink here) copied as the file it points to, as the asset materializes it."""
    others = [p for p in FUNCTION_PACKAGES if p != package]
    shutil.copytree(
        ROOT / "functions",
        destination,
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *others),
    )
    assert not (destination / package / "catalog.py").is_symlink()
    return destination


# Runs in the isolated 3.12 interpreter. The search path is Lambda's order (AWS Lambda Developer Guide, "Building
# Lambda functions with Python", dependency search path: /var/task first, then the layer's /opt/python, then the
# runtime's libraries), ahead of the stdlib.
PROBE = """
import importlib, json, sys, sysconfig
config = json.loads(sys.argv[1])
sys.path[0:0] = [config["task"], config["layer"], config["runtime"]]
report = {}
modules = [importlib.import_module(name) for name in config["imports"]]
if config.get("event"):
    class Context:
        function_name = "modelrail-iris"
        function_version = "1"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:modelrail-iris:live"
        aws_request_id = "00000000-0000-0000-0000-000000000001"
        def get_remaining_time_in_millis(self):
            return 30000
    report["response"] = modules[0].lambda_handler(config["event"], Context())
report["files"] = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items()) if "." not in n}
report["version"] = list(sys.version_info[:2])
report["stdlib"] = sorted({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})
print("PROBE " + json.dumps(report))
"""


def probe(
    lambda_like: dict[str, Path], package: str, imports: list[str], environment: dict[str, str], **extra: Any
) -> dict[str, Any]:
    task = function_code(package, lambda_like["root"] / f"task-{package}")
    config: dict[str, Any] = {
        "task": str(task),
        "layer": str(lambda_like["layer"]),
        "runtime": str(lambda_like["runtime"]),
    }
    config |= {"imports": imports, **extra}
    # -I -S: no PYTHON* variables, no user or system site-packages, no script directory on sys.path.
    command = [str(python312()), "-I", "-S", "-c", PROBE, json.dumps(config)]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(lambda_like["root"]), **environment}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{package}: importing {imports} on 3.12 failed:\n{result.stderr[-4000:]}"
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    report: dict[str, Any] = json.loads(line.removeprefix("PROBE "))
    assert report["version"] == [3, 12]
    assert_nothing_leaked(report, lambda_like, task)
    return report


def assert_nothing_leaked(report: dict[str, Any], lambda_like: dict[str, Path], task: Path) -> None:
    """Every imported module came from the stdlib, the function's code, the layer, or (boto3 and its kin only)
    the runtime; the layer's packages from the layer alone."""
    stdlib = [Path(p) for p in report["stdlib"]]
    origins: dict[str, str] = {}
    for name, file in report["files"].items():
        if file is None:
            origins[name] = "builtin"
            continue
        path = Path(file)
        if path.is_relative_to(lambda_like["layer"]):
            origins[name] = "layer"
        elif path.is_relative_to(task):
            origins[name] = "task"
        elif path.is_relative_to(lambda_like["runtime"]):
            origins[name] = "runtime"
        elif "site-packages" not in path.parts and any(path.is_relative_to(p) for p in stdlib):
            origins[name] = "stdlib"
        else:
            origins[name] = f"elsewhere: {file}"
    leaked = {n: o for n, o in origins.items() if o.startswith("elsewhere")}
    assert not leaked, f"modules from outside the layer, the code, the runtime and the stdlib: {leaked}"
    from_runtime = {n for n, o in origins.items() if o == "runtime"}
    assert from_runtime <= set(RUNTIME_PROVIDED), (
        f"{sorted(from_runtime - set(RUNTIME_PROVIDED))}: from the runtime, which does not provide them"
    )
    misplaced = {n: origins[n] for n in FROM_THE_LAYER & set(origins) if origins[n] != "layer"}
    assert not misplaced, f"packages the layer must provide came from elsewhere: {misplaced}"


@pytest.fixture(scope="module")
def s3() -> Any:
    with EmbeddedAWS() as aws:
        yield aws


def test_x86_64_layer_serves_the_iris_model_through_the_handler_on_python312(
    lambda_like: dict[str, Path], s3: EmbeddedAWS, tmp_path: Path
) -> None:
    model = IRIS.read_bytes()
    sha256 = hashlib.sha256(model).hexdigest()
    key = f"models/iris/{sha256}.onnx"
    client = s3.client("s3")
    client.create_bucket(Bucket=ARTIFACT_BUCKET)
    client.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=model)
    event = json.loads((ROOT / "tests" / "events" / "apigw_rest_proxy.json").read_text())
    environment = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": s3.endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "MODEL_NAME": "iris",
        "MODEL_URI": f"s3://{ARTIFACT_BUCKET}/{key}",
        "MODEL_SHA256": sha256,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "MODEL_CACHE_DIR": str(tmp_path / "models"),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }

    report = probe(lambda_like, "inference", ["inference.handler", "aws_xray_sdk.core"], environment, event=event)

    response = report["response"]
    assert response["statusCode"] == 200, response_body(response)
    body = json.loads(response_body(response))
    assert (body["model_name"], body["model_version"], body["id"]) == ("iris", "1", "req-42")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["output_label"]["data"] == [0, 2]
    first, second = outputs["output_probability"]["data"]
    assert max(first, key=first.get) == "0"
    assert max(second, key=second.get) == "2"
    assert {"numpy", "onnxruntime", "aws_lambda_powertools", "orjson"} <= set(report["files"])
    # The lean cold start (issue 14): the environment validated without pydantic, the artifact fetched with the
    # function's own SigV4 GET rather than a boto3 client (the credentials are in the environment, as on Lambda).
    assert not {"pydantic", "boto3"} & set(report["files"])


@pytest.mark.parametrize(
    ("package", "modules"),
    [
        # The hooks' entry modules, and the gate and replay the pre-traffic hook runs (imported only when it runs).
        ("acceptance", ["acceptance.pretraffic", "acceptance.posttraffic", "acceptance.gate", "acceptance.replay"]),
        ("monitor", ["monitor.handler"]),
    ],
)
def test_x86_64_layer_imports_the_hooks_and_the_monitor_on_python312(
    lambda_like: dict[str, Path], package: str, modules: list[str]
) -> None:
    environment = {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

    report = probe(lambda_like, package, modules, environment)

    assert "numpy" in report["files"]
    assert package in report["files"]
