"""Build the inference runtime's Lambda layer without Docker, and only when its inputs change.

``pip install --platform manylinux... --only-binary=:all: --target`` fetches the Linux wheels for Lambda's Python
and architecture from any host; shared objects are stripped, tests and caches pruned, and the result zipped
under ``layers/build/`` with a stamp keyed by the hash of every input (requirements, Python version,
architecture, this file). ``python layers/build.py [arm64|x86_64]`` builds and prints the sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
BUILD_DIR = HERE / "build"
PYTHON_VERSION = "3.12"
# Lambda's limit is 250 MB unzipped for function and layers together; the model is downloaded to /tmp, so
# the code (~100 KB) and this layer are all that count.
TARGET_UNZIPPED_MB = 110
ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
# Lambda's Python 3.12 runs on Amazon Linux 2023 (glibc 2.34): every manylinux tag up to 2_34 loads.
_GLIBC = ("2014", "_2_17", "_2_24", "_2_26", "_2_27", "_2_28", "_2_31", "_2_34")
# Never in the layer: the Lambda runtime provides them, and a second copy only wastes the size budget.
EXCLUDED_DISTRIBUTIONS = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"})
# What no import at run time reaches: test suites, caches, C headers, onnxruntime's offline tools, and its C API
# library (27 MB), which only native callers load: the Python binding links the runtime in statically.
_PRUNED_DIRS = frozenset({"__pycache__", "tests", "test", "include"})
_PRUNED_PATHS = ("onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization", "numpy/f2py")
_PRUNED_GLOBS = ("onnxruntime/capi/libonnxruntime.so*",)
_PRUNED_SUFFIXES = (".pyc", ".pyo", ".pyi", ".c", ".h", ".cpp", ".pxd")


class LayerBuildError(RuntimeError):
    """The layer could not be built; the message says which step and why."""


@dataclass(frozen=True)
class LayerArtifact:
    """A built layer: the zip Lambda receives and what it weighs."""

    architecture: str
    input_hash: str
    zip_path: Path
    unzipped_bytes: int
    zipped_bytes: int

    @property
    def unzipped_mb(self) -> float:
        return self.unzipped_bytes / 1_000_000

    def summary(self) -> str:
        return (
            f"layer {self.architecture} {self.input_hash[:12]}: {self.unzipped_mb:.1f} MB unzipped "
            f"(target <= {TARGET_UNZIPPED_MB} MB), {self.zipped_bytes / 1_000_000:.1f} MB zipped -> {self.zip_path}"
        )


def platforms(architecture: str) -> list[str]:
    try:
        machine = ARCHITECTURES[architecture]
    except KeyError:
        raise LayerBuildError(f"architecture {architecture!r}: expected one of {sorted(ARCHITECTURES)}") from None
    return [f"manylinux{glibc}_{machine}" for glibc in _GLIBC]


def pinned_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The requirement lines; each must pin one exact version, and none may be an excluded distribution."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    requirements = [line for line in lines if line]
    for line in requirements:
        name, sep, version = line.partition("==")
        if not sep or not version:
            raise LayerBuildError(f"{path}: {line!r} must pin an exact version (name==version)")
        if name.strip().lower().replace("_", "-") in EXCLUDED_DISTRIBUTIONS:
            raise LayerBuildError(f"{path}: {name} must stay out of the layer (the Lambda runtime provides it)")
    return requirements


def input_hash(architecture: str, requirements: Path = REQUIREMENTS) -> str:
    digest = hashlib.sha256()
    for part in (
        PYTHON_VERSION,
        architecture,
        *platforms(architecture),
        *pinned_requirements(requirements),
        Path(__file__).read_text(),
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def build_layer(
    architecture: str = "arm64",
    *,
    requirements: Path = REQUIREMENTS,
    build_dir: Path = BUILD_DIR,
    force: bool = False,
    log: Callable[[str], object] = print,
) -> LayerArtifact:
    """Return the layer for ``architecture``, building it only if no build of the same inputs exists."""
    key = input_hash(architecture, requirements)
    stamp = build_dir / f"layer-{architecture}-{key[:16]}.json"
    zip_path = stamp.with_suffix(".zip")
    if not force and stamp.is_file() and zip_path.is_file():
        artifact = LayerArtifact(architecture, key, zip_path, **json.loads(stamp.read_text()))
        log(f"{artifact.summary()} (up to date)")
        return artifact

    staging = build_dir / f".staging-{architecture}-{key[:16]}"
    shutil.rmtree(staging, ignore_errors=True)
    site = staging / "python"  # Lambda puts /opt/python on sys.path
    site.mkdir(parents=True)
    _pip_install(architecture, requirements, site)
    _prune(site)
    _strip_shared_objects(site, log)
    unzipped = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    tmp_zip = zip_path.with_suffix(".zip.tmp")
    _zip(staging, tmp_zip)
    tmp_zip.replace(zip_path)
    shutil.rmtree(staging, ignore_errors=True)
    artifact = LayerArtifact(architecture, key, zip_path, unzipped, zip_path.stat().st_size)
    stamp.write_text(json.dumps({"unzipped_bytes": artifact.unzipped_bytes, "zipped_bytes": artifact.zipped_bytes}))
    for old in build_dir.glob(f"layer-{architecture}-*"):
        if old not in (stamp, zip_path):
            old.unlink()
    log(artifact.summary())
    return artifact


def _pip_install(architecture: str, requirements: Path, target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    command += ["--no-deps", "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION]
    for platform in platforms(architecture):
        command += ["--platform", platform]
    command += ["--target", str(target), "-r", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LayerBuildError(f"pip install for {architecture} failed:\n{result.stderr.strip()[-4000:]}")


def _prune(site: Path) -> None:
    for relative in _PRUNED_PATHS:
        shutil.rmtree(site / relative, ignore_errors=True)
    for pattern in _PRUNED_GLOBS:
        for path in site.glob(pattern):
            path.unlink()
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in _PRUNED_DIRS and not path.name.endswith(".dist-info"):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in _PRUNED_SUFFIXES:
            path.unlink()
    shutil.rmtree(site / "bin", ignore_errors=True)


def _strip_shared_objects(site: Path, log: Callable[[str], object]) -> None:
    """Drop symbols Lambda never needs. llvm-strip reads every architecture; GNU strip only the host's."""
    tool = shutil.which("llvm-strip") or shutil.which("strip")
    if tool is None:
        log("no strip tool found: shared objects left unstripped")
        return
    # auditwheel's vendored libraries (*.libs/) were rewritten by patchelf; stripping those can corrupt them.
    objects = [p for p in site.rglob("*.so*") if p.is_file() and not any(s.endswith(".libs") for s in p.parts)]
    failed = [p for p in objects if subprocess.run([tool, "--strip-unneeded", str(p)], capture_output=True).returncode]
    if failed:
        log(f"{tool}: could not strip {len(failed)} of {len(objects)} shared objects (kept as they were)")


def _zip(root: Path, destination: Path) -> None:
    """A reproducible zip: sorted entries, fixed timestamps, so equal inputs give equal bytes."""
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())


def main(argv: list[str]) -> int:
    architectures = argv or ["arm64"]
    try:
        artifacts = [build_layer(arch) for arch in architectures]
    except LayerBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0 if all(a.unzipped_mb <= TARGET_UNZIPPED_MB for a in artifacts) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
