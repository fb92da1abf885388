"""Build the inference runtime's Lambda layer without Docker, and only when its inputs change.

``pip install --platform manylinux... --only-binary=:all: --target`` fetches the Linux wheels for Lambda's Python
and architecture from any host; tests and caches are pruned, every shared object is checked to be one Lambda's
loader accepts, and the result zipped under ``layers/build/`` with a stamp keyed by the hash of every input
(requirements, Python version, architecture, this file). ``python layers/build.py [arm64|x86_64]`` builds and
prints the sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections import deque
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
# The ELF e_machine each architecture's shared objects must carry (System V ABI: EM_AARCH64, EM_X86_64).
ELF_MACHINES = {"arm64": 183, "x86_64": 62}
_MACHINE_NAMES = {183: "EM_AARCH64", 62: "EM_X86_64"}
# Lambda's page size on both architectures; glibc refuses a PT_LOAD whose p_align is not a multiple of it.
PAGE_SIZE = 4096
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
# Shared objects ship as the wheels have them, never stripped: auditwheel rewrote numpy's extension modules and
# vendored libraries with patchelf, and `strip --strip-unneeded` (GNU or LLVM) lays such a file out again with
# PT_LOAD segments whose p_offset and p_vaddr disagree modulo the page size, which glibc refuses at import
# ("ELF load command address/offset not page-aligned"). Unstripped, the layer weighs 95.3 MB (arm64) and
# 107.4 MB (x86_64) with pysimdjson 7.0.2 (its simdjson kernels ~6-8 MB), within TARGET_UNZIPPED_MB; stripping only
# what stays loadable would save about 0.6 MB, and would make the layer's bytes depend on which strip the building
# host has.


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
    log(
        f"layer {architecture}: downloading {len(pinned_requirements(requirements))} pinned wheels for Python "
        f"{PYTHON_VERSION} from the package index (needed once: {_shown(build_dir)} keeps the built layer until its "
        "inputs change)"
    )
    _pip_install(architecture, requirements, site, log)
    _prune(site)
    check_shared_objects(site, architecture)
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


def _shown(path: Path) -> str:
    try:
        return f"{path.resolve().relative_to(HERE.parent)}/"
    except ValueError:
        return f"{path}/"


def _pip_install(architecture: str, requirements: Path, target: Path, log: Callable[[str], object] = print) -> None:
    """Download and unpack the pinned wheels, logging each download as pip reports it; one line on failure."""
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile"]
    command += ["--progress-bar", "off", "--no-deps", "--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", PYTHON_VERSION]
    for platform in platforms(architecture):
        command += ["--platform", platform]
    command += ["--target", str(target), "-r", str(requirements)]
    tail: deque[str] = deque(maxlen=400)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:  # pip names each wheel as it fetches it ("Downloading x.whl (14.2 MB)")
            tail.append(line.rstrip())
            if line.startswith(_PROGRESS):
                log(f"  {line.split(' (from -r ', 1)[0].strip()}")
    if pip.returncode != 0:
        raise LayerBuildError(f"layer {architecture}: {pip_failure(list(tail))}")


_PROGRESS = ("Collecting", "Downloading", "Using cached", "Successfully installed")
_UNREACHABLE = re.compile(
    r"(Failed to establish a new connection: [^'\")]+|Temporary failure in name resolution|Name or service not known"
    r"|Connection refused|timed out|Network is unreachable|SSLError[^'\")]*|ProxyError[^'\")]*)"
)


def pip_failure(output: list[str]) -> str:
    """One line naming why pip failed: the index out of reach (and why), else pip's own last error."""
    errors = [line.removeprefix("ERROR: ").strip() for line in output if line.startswith("ERROR:")]
    last = errors[-1] if errors else (output[-1].strip() if output else "pip exited with an error")
    reasons = [m[1] for line in output for m in [_UNREACHABLE.search(line)] if m]
    if reasons:
        return (
            f"the package index could not be reached ({reasons[-1].strip()}); building the layer downloads its "
            f"pinned wheels once, so run the build (or `make synth`) once where the index is reachable "
            f"(pip: {last})"
        )
    return f"pip could not install the layer's wheels: {last}"


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


def check_shared_objects(site: Path, architecture: str) -> None:
    """Raise if any shared object under ``site`` is one Lambda's loader would refuse for ``architecture``."""
    machine = ELF_MACHINES[architecture]
    for path in sorted(site.rglob("*.so*")):
        if path.is_file() and (path.name.endswith(".so") or ".so." in path.name):
            name = f"{site.name}/{path.relative_to(site).as_posix()}"
            problem = _load_problem(path.read_bytes(), machine)
            if problem:
                raise LayerBuildError(f"layer {architecture}: {name}: {problem}; Lambda could not load it")


def _load_problem(data: bytes, machine: int) -> str | None:
    """Why glibc's loader would refuse this shared object on ``machine``, or None.

    The rules are those of the System V ABI's program header ("loadable process segments must have congruent
    values for p_vaddr and p_offset, modulo the page size ... p_vaddr should equal p_offset, modulo p_align"),
    as glibc's elf/dl-load.c enforces them when it maps each PT_LOAD segment.
    """
    if data[:4] != b"\x7fELF":
        return "not an ELF file"
    if data[4] != 2 or data[5] != 1:  # EI_CLASS ELFCLASS64, EI_DATA ELFDATA2LSB
        return f"ELF class {data[4]} / data encoding {data[5]}, expected 64-bit little-endian (2 / 1)"
    try:
        (e_machine,) = struct.unpack_from("<H", data, 18)
        (e_phoff,) = struct.unpack_from("<Q", data, 32)
        e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
        headers = [struct.unpack_from("<IIQQQQQQ", data, e_phoff + i * e_phentsize) for i in range(e_phnum)]
    except struct.error:
        return "truncated ELF header or program headers"
    if e_machine != machine:
        found = _MACHINE_NAMES.get(e_machine, "another machine")
        return f"ELF machine {e_machine} ({found}), expected {machine} ({_MACHINE_NAMES[machine]})"
    for index, (p_type, _, p_offset, p_vaddr, _, _, _, p_align) in enumerate(headers):
        if p_type != 1:  # PT_LOAD
            continue
        if p_align == 0 or p_align % PAGE_SIZE:
            return f"PT_LOAD segment {index}: p_align {p_align:#x} is not a multiple of the page size {PAGE_SIZE:#x}"
        if (p_vaddr - p_offset) % p_align:
            return (
                f"PT_LOAD segment {index}: p_offset {p_offset:#x} and p_vaddr {p_vaddr:#x} differ modulo "
                f"p_align {p_align:#x}"
            )
    return None


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
