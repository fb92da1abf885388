"""ModelBundle: a model as the user hands it over, a folder or a bare ``.onnx`` file.

A folder holds ``model.onnx``, optionally ``acceptance.jsonl`` (one case a line: Open Inference Protocol
``inputs`` and the ``expected`` flat data per output) and ``modelrail.json`` (settings, all optional).
A bare ``name.onnx`` is a bundle named ``name`` with default settings. Pure Python: the command line, the
local environment and ``cdk synth`` all read bundles through this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.acceptance.criteria import AcceptanceCriteria
from functions.acceptance.gate import AcceptanceCase, AcceptanceSetError, parse_cases

MODEL_FILE = "model.onnx"
ACCEPTANCE_FILE = "acceptance.jsonl"
BASELINE_FILE = "baseline.json"
SETTINGS_FILE = "modelrail.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


def artifact_prefix(name: str) -> str:
    """Where every version of a model's artifact lives: what all the function's versions may read."""
    return f"models/{name}/"


def artifact_key(name: str, sha256: str) -> str:
    """Content-addressed object key of a model: a new model is a new key, never an overwrite."""
    return f"{artifact_prefix(name)}{sha256}.onnx"


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file or field at fault."""


class BundleSettings(BaseModel):
    """``modelrail.json``: every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, pattern=NAME_PATTERN, description="model name in the API; default: folder name")
    description: str = ""
    version: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="the version `serve` serves it as beside other bundles of the model (default 1, 2, ... in "
        "the order given); a deploy numbers Lambda versions itself",
    )
    max_batch_rows: int = Field(1024, ge=1, le=1_000_000, description="rows per request before a 413")
    acceptance: AcceptanceCriteria = Field(default_factory=AcceptanceCriteria)
    capture_exclude_inputs: tuple[str, ...] = Field(
        (), description="inputs never written by data capture (personal data)"
    )


@dataclass(frozen=True)
class ModelBundle:
    name: str
    root: Path
    model_path: Path
    settings: BundleSettings

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        path = Path(path)
        if path.is_file() and path.suffix == ".onnx":
            return cls._named(path.stem, path, path, BundleSettings())
        if not path.exists():
            raise BundleError(f"{path}: no such bundle (expected a folder with {MODEL_FILE}, or a .onnx file)")
        if not path.is_dir():
            raise BundleError(f"{path}: a bundle is a folder with {MODEL_FILE} or a .onnx file")
        model_path = path / MODEL_FILE
        if not model_path.is_file():
            raise BundleError(f"{path}: missing {MODEL_FILE}")
        settings = cls._read_settings(path / SETTINGS_FILE)
        return cls._named(settings.name or path.resolve().name, path, model_path, settings)

    @classmethod
    def _named(cls, name: str, root: Path, model_path: Path, settings: BundleSettings) -> ModelBundle:
        if not re.match(NAME_PATTERN, name):
            raise BundleError(
                f"{root}: model name {name!r} must be 1-128 letters, digits, '_', '.' or '-', starting with a "
                f'letter or digit (set "name" in {SETTINGS_FILE})'
            )
        return cls(name, root, model_path, settings)

    @staticmethod
    def _read_settings(path: Path) -> BundleSettings:
        if not path.exists():
            return BundleSettings()
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from exc
        try:
            return BundleSettings.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
            raise BundleError(f"{path}: {problems}") from exc

    @property
    def acceptance_path(self) -> Path | None:
        path = self.root / ACCEPTANCE_FILE if self.root.is_dir() else None
        return path if path and path.is_file() else None

    @property
    def baseline_path(self) -> Path | None:
        """``baseline.json``: the reference data's statistics for drift monitoring (``modelrail baseline``)."""
        path = self.root / BASELINE_FILE if self.root.is_dir() else None
        return path if path and path.is_file() else None

    def acceptance_cases(self) -> list[AcceptanceCase]:
        path = self.acceptance_path
        if path is None:
            return []
        try:
            return parse_cases(path.read_text(), str(path))
        except AcceptanceSetError as exc:
            raise BundleError(str(exc)) from exc

    def sha256(self) -> str:
        return hashlib.sha256(self.model_path.read_bytes()).hexdigest()

    def artifact_key(self) -> str:
        return artifact_key(self.name, self.sha256())
