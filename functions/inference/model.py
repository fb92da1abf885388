"""OnnxModel: one ONNX model in an onnxruntime session, its signature, and checked inference."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .datatypes import ONNX_TO_OIP
from .errors import BadRequest, ModelFault, NonFiniteOutput, PayloadTooLarge


class ModelLoadError(Exception):
    """The artifact is not a model onnxruntime can serve; the message says why."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model's own ONNX signature."""

    name: str
    onnx_type: str
    datatype: str | None  # None for non-tensor values (sequences, maps)
    shape: tuple[int | None, ...]  # None marks a dynamic dimension

    @classmethod
    def of(cls, arg: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
        return cls(arg.name, arg.type, ONNX_TO_OIP.get(arg.type), shape)

    @property
    def is_tensor(self) -> bool:
        return self.datatype is not None

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype or "BYTES",
            "shape": [-1 if d is None else d for d in self.shape] if self.is_tensor else [-1],
            **({} if self.is_tensor else {"parameters": {"onnx_type": self.onnx_type, "content_type": "json"}}),
        }

    def describe(self) -> str:
        dims = ", ".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.name} ({self.datatype or self.onnx_type}, shape [{dims}])"


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """Session options for Lambda rather than for a dedicated server.

    - Threads: one intra-op thread per vCPU the function really has (Lambda gives 1 vCPU per 1,769 MB,
      while onnxruntime's default reads the host's cores and oversubscribes); no inter-op parallelism,
      requests are served one at a time per execution environment.
    - No spinning: by default idle pool threads busy-wait after every run, burning billed CPU between
      requests and stealing the one vCPU from the handler's own JSON work.
    - No CPU memory arena: the arena keeps its peak (grown in doubling chunks) for the life of the
      environment, so one large batch would pin memory that Lambda counts against the function's limit;
      plain allocations cost little next to the JSON decoding of the same tensors.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxModel:
    """A model that can be loaded once and then asked for predictions on checked inputs."""

    def __init__(
        self,
        name: str,
        version: str,
        path: Path,
        *,
        max_batch_rows: int = 1024,
        intra_op_threads: int | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.max_batch_rows = max_batch_rows
        self.intra_op_threads = intra_op_threads
        self.ready = False
        self.inputs: dict[str, TensorSpec] = {}
        self.outputs: dict[str, TensorSpec] = {}
        self._session: ort.InferenceSession | None = None

    def load(self) -> OnnxModel:
        try:
            session = ort.InferenceSession(
                str(self.path), sess_options=session_options(self.intra_op_threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f"onnxruntime cannot load {self.path.name}: {exc}") from exc
        inputs = [TensorSpec.of(a) for a in session.get_inputs()]
        unsupported = [i.describe() for i in inputs if not i.is_tensor]
        if unsupported:
            raise ModelLoadError(f"model inputs must be tensors; not supported: {', '.join(unsupported)}")
        self.inputs = {i.name: i for i in inputs}
        self.outputs = {o.name: o for o in (TensorSpec.of(a) for a in session.get_outputs())}
        self._session = session
        self.ready = True
        return self

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [i.metadata() for i in self.inputs.values()],
            "outputs": [o.metadata() for o in self.outputs.values()],
        }

    def expected_inputs(self) -> str:
        return "; ".join(i.describe() for i in self.inputs.values())

    def check(self, name: str, datatype: str, shape: list[int]) -> TensorSpec:
        """The input's spec, after checking a request's name, datatype, rank, fixed dims and row count."""
        spec = self.inputs.get(name)
        if spec is None:
            raise BadRequest(f"unknown input '{name}': model '{self.name}' expects {self.expected_inputs()}")
        if datatype != spec.datatype:
            raise BadRequest(f"input '{name}' has datatype {datatype}; model '{self.name}' expects {spec.datatype}")
        if len(shape) != len(spec.shape):
            raise BadRequest(
                f"input '{name}' has shape {shape} (rank {len(shape)}); model '{self.name}' expects rank "
                f"{len(spec.shape)}: {spec.describe()}"
            )
        for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
            if want is not None and got != want:
                raise BadRequest(
                    f"input '{name}' has {got} at dimension {axis} of shape {shape}; model '{self.name}' "
                    f"expects {want}: {spec.describe()}"
                )
        if shape and spec.shape[0] is None and shape[0] > self.max_batch_rows:
            raise PayloadTooLarge(
                f"input '{name}' has {shape[0]} rows; this deployment accepts at most {self.max_batch_rows} "
                "rows per request: split the batch"
            )
        return spec

    def output_names(self, requested: list[str] | None) -> list[str]:
        if not requested:
            return list(self.outputs)
        unknown = [n for n in requested if n not in self.outputs]
        if unknown:
            expected = ", ".join(self.outputs)
            raise BadRequest(f"unknown output '{unknown[0]}': model '{self.name}' has outputs {expected}")
        return requested

    def predict(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> dict[str, Any]:
        """Run the model on feeds already checked by :meth:`check`; outputs keyed by name."""
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise BadRequest(f"missing input '{missing[0]}': model '{self.name}' expects {self.expected_inputs()}")
        assert self._session is not None, "predict() before load()"
        try:
            values = self._session.run(output_names, feeds)
        except Exception as exc:
            raise ModelFault(f"model '{self.name}' version {self.version} failed: {exc}") from exc
        results = dict(zip(output_names, values, strict=True))
        for name, value in results.items():
            bad = count_non_finite(value)
            if bad:
                raise NonFiniteOutput(
                    f"model '{self.name}' version {self.version} produced {bad} non-finite value(s) (NaN/Inf) "
                    f"in output '{name}'"
                )
        return results


def count_non_finite(value: Any) -> int:
    """How many NaN/Inf a model output holds: float tensors, or the floats inside sequences of maps."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return 0
        return int(value.size - np.count_nonzero(np.isfinite(value)))
    if isinstance(value, list):
        return sum(count_non_finite(v) for v in value)
    if isinstance(value, dict):
        return sum(count_non_finite(v) for v in value.values())
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    return 0
