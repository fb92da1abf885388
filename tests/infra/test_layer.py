"""The runtime layer: built without Docker from pinned requirements, small enough, holding what the handler
imports and nothing the Lambda runtime already has; rebuilt only when its inputs change."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from layers import build
from layers.build import (
    REQUIREMENTS,
    TARGET_UNZIPPED_MB,
    LayerArtifact,
    LayerBuildError,
    build_layer,
    input_hash,
    pinned_requirements,
)
from tests.infra.conftest import ROOT

# Provided by the Lambda Python runtime (boto3 and its dependencies): never shipped in the layer.
# snapshot_restore_py (SnapStart's hooks) "is included in Python managed runtimes" ("Lambda SnapStart runtime hooks
# for Python", https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html).
RUNTIME_PROVIDED = {
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "dateutil",
    "six",
    "jmespath",
    "certifi",
    "snapshot_restore_py",
}
# Imported by urllib3 only when installed, as it happens to be on this machine: optional, not needed.
OPTIONAL = {"brotli", "_brotli"}


@pytest.fixture(scope="module")
def layer() -> LayerArtifact:
    return build_layer("arm64", log=lambda _: None)


@pytest.fixture(scope="module")
def names(layer: LayerArtifact) -> list[str]:
    with zipfile.ZipFile(layer.zip_path) as archive:
        return archive.namelist()


def test_layer_is_within_the_size_target(layer: LayerArtifact) -> None:
    print(layer.summary())
    assert 0 < layer.unzipped_mb <= TARGET_UNZIPPED_MB
    assert layer.zip_path.stat().st_size == layer.zipped_bytes


def test_layer_holds_python312_linux_arm64_binaries_under_python(names: list[str]) -> None:
    assert all(n.startswith("python/") for n in names)
    extensions = [n for n in names if n.endswith(".so")]
    assert any("onnxruntime_pybind11_state.cpython-312-aarch64-linux-gnu.so" in n for n in extensions)
    assert any("_multiarray_umath.cpython-312-aarch64-linux-gnu.so" in n for n in extensions)
    assert not any("x86_64" in n or "cpython-311" in n for n in extensions)


def test_layer_holds_every_module_the_handler_imports_and_nothing_the_runtime_has(names: list[str]) -> None:
    # What `import inference.handler` pulls in, measured on this machine's environment (same pinned versions).
    probe = (
        "import sys; before = set(sys.modules); import functions.inference.handler; "
        "print('MODULES', *sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))"
    )
    # An unusable MODEL_URI: the handler imports everything it serves with, and never reaches for S3.
    env = {**os.environ, "MODEL_NAME": "iris", "MODEL_URI": "s3://b/k", "MODEL_SHA256": "0" * 64}
    env.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")]
    imported = set(line.split()[1:]) - {"functions"} - {m for m in line.split() if m.startswith("_sysconfigdata")}
    # (pydantic stays in the layer for the hooks' gate; the inference handler's cold start no longer imports it.)
    assert {"onnxruntime", "numpy", "aws_lambda_powertools", "orjson", "pybase64", "simdjson"} <= imported
    top_level = {n.split("/")[1] for n in names}
    # A module is its file's name up to the first dot: foo.py, and extension modules such as pysimdjson's
    # top-level csimdjson.abi3.so.
    top_level |= {t.split(".")[0] for t in top_level if t.endswith((".py", ".so"))}
    # Cython's extension modules (pysimdjson's) register these in sys.modules as they load: no file of their own.
    made_by_cython = {m for m in imported if m == "cython_runtime" or m.startswith("_cython_")}
    missing = imported - RUNTIME_PROVIDED - OPTIONAL - top_level - made_by_cython
    assert not missing, f"the handler imports {sorted(missing)}, which the layer lacks"
    assert not top_level & {"boto3", "botocore", "s3transfer", "urllib3"}


def test_layer_is_pruned(names: list[str]) -> None:
    assert not [n for n in names if "/__pycache__/" in n or n.endswith(".pyc")]
    assert not [n for n in names if "/tests/" in n]
    assert not [n for n in names if n.startswith("python/onnxruntime/capi/libonnxruntime.so")]


NUMPY_CORE = "python/numpy/_core/_multiarray_umath.cpython-312-aarch64-linux-gnu.so"


def misaligned(shared_object: bytes) -> bytes:
    """The object with its last PT_LOAD's p_offset moved off its p_vaddr modulo the page size, as stripping
    numpy's patchelf-rewritten extension modules left them."""
    elf = ELFFile(io.BytesIO(shared_object))
    loads = [i for i, s in enumerate(elf.iter_segments()) if s["p_type"] == "PT_LOAD"]
    header = elf["e_phoff"] + loads[-1] * elf["e_phentsize"]
    data = bytearray(shared_object)
    (p_offset,) = struct.unpack_from("<Q", data, header + 8)
    struct.pack_into("<Q", data, header + 8, p_offset + 0xEC8)
    return bytes(data)


@pytest.mark.parametrize(
    ("architecture", "corrupt", "expected"),
    [
        (
            "arm64",
            misaligned,
            r"PT_LOAD segment \d+: p_offset 0x[0-9a-f]+ and p_vaddr 0x[0-9a-f]+ differ modulo p_align 0x10000",
        ),
        ("x86_64", lambda data: data, r"ELF machine 183 \(EM_AARCH64\), expected 62 \(EM_X86_64\)"),
    ],
)
def test_a_build_with_a_shared_object_lambda_cannot_load_fails_naming_it(
    layer: LayerArtifact,
    architecture: str,
    corrupt: Callable[[bytes], bytes],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with zipfile.ZipFile(layer.zip_path) as archive:
        numpy_core = archive.read(NUMPY_CORE)

    def install(_architecture: str, _requirements: Path, target: Path, *_log: object) -> None:
        path = target / NUMPY_CORE.removeprefix("python/")
        path.parent.mkdir(parents=True)
        path.write_bytes(corrupt(numpy_core))

    monkeypatch.setattr(build, "_pip_install", install)
    with pytest.raises(LayerBuildError, match=rf"layer {architecture}: {re.escape(NUMPY_CORE)}: {expected}"):
        build_layer(architecture, build_dir=tmp_path, log=lambda _: None)
    assert not list(tmp_path.glob("*.zip")), "no layer zip may be left for a failed build"


def test_layer_is_not_rebuilt_when_its_inputs_do_not_change(layer: LayerArtifact) -> None:
    mtime = layer.zip_path.stat().st_mtime_ns
    lines: list[str] = []
    again = build_layer("arm64", log=lines.append)
    assert again == layer
    assert again.zip_path.stat().st_mtime_ns == mtime
    assert lines
    assert lines[0].endswith("(up to date)")


def test_inputs_hash_covers_requirements_and_architecture(tmp_path: Path) -> None:
    changed = tmp_path / "requirements.txt"
    changed.write_text(REQUIREMENTS.read_text().replace("orjson==3.13.0", "orjson==3.12.0"))
    assert input_hash("arm64") != input_hash("arm64", changed)
    assert input_hash("arm64") != input_hash("x86_64")


def test_requirements_are_pinned_like_the_runtime_and_leave_boto3_out(tmp_path: Path) -> None:
    layer_pins = dict(line.split("==") for line in pinned_requirements())
    runtime_pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            runtime_pins[name.split("[")[0].lower().replace("_", "-")] = version
    for name, version in layer_pins.items():
        key = name.lower().replace("_", "-")
        if key in runtime_pins:
            assert runtime_pins[key] == version, f"{name}: layer {version}, requirements.txt {runtime_pins[key]}"
    for needed in ("numpy", "onnxruntime", "orjson", "aws-lambda-powertools", "aws-xray-sdk", "pydantic"):
        assert needed in {n.lower().replace("_", "-") for n in layer_pins}
    unpinned = tmp_path / "requirements.txt"
    unpinned.write_text("numpy>=2\n")
    with pytest.raises(LayerBuildError, match="must pin an exact version"):
        pinned_requirements(unpinned)
    unpinned.write_text("boto3==1.44.8\n")
    with pytest.raises(LayerBuildError, match="must stay out of the layer"):
        pinned_requirements(unpinned)
