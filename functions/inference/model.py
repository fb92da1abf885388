"""OnnxModel: one ONNX model in an onnxruntime session, its signature, and checked inference."""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .catalog import Env
from .datatypes import ONNX_TO_OIP
from .errors import BadRequest, ModelFault, NonFiniteOutput, PayloadTooLarge

MAX_RANK = 64  # numpy's limit on an array's dimensions (NPY_MAXDIMS): no tensor with more can be decoded
# The model's metadata_props key naming the float inputs that may carry NaN/Inf (comma-separated, or "*"):
# tree ensembles take NaN as "missing". Every other float input is refused NaN/Inf with a 400.
NON_FINITE_INPUTS_KEY = "modelrail.non_finite_inputs"


class ModelLoadError(Exception):
    """The artifact is not a model onnxruntime can serve; the message says why."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model's own ONNX signature."""

    name: str
    onnx_type: str
    datatype: str | None  # None for non-tensor values (sequences, maps)
    shape: tuple[int | None, ...]  # None marks a dynamic dimension
    ranked: bool = True  # False: the graph gives no shape at all, so any rank goes (and ``shape`` is empty)

    @classmethod
    def of(cls, arg: Any, ranked: bool = True) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
        return cls(arg.name, arg.type, ONNX_TO_OIP.get(arg.type), shape, ranked)

    @property
    def is_tensor(self) -> bool:
        return self.datatype is not None

    def metadata(self) -> dict[str, Any]:
        if not self.is_tensor:
            parameters: dict[str, Any] = {"onnx_type": self.onnx_type, "content_type": "json"}
            return {"name": self.name, "datatype": "BYTES", "shape": [-1], "parameters": parameters}
        if not self.ranked:
            # The Open Inference Protocol has no shape for "any rank" (nor has Triton's model configuration):
            # [-1] is a valid shape a client can send, and the parameter says that other ranks are taken too.
            return {"name": self.name, "datatype": self.datatype, "shape": [-1], "parameters": {"unknown_rank": True}}
        return {"name": self.name, "datatype": self.datatype, "shape": [-1 if d is None else d for d in self.shape]}

    def describe(self) -> str:
        if not self.ranked:
            return f"{self.name} ({self.datatype or self.onnx_type}, any shape)"
        dims = ", ".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.name} ({self.datatype or self.onnx_type}, shape [{dims}])"


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """Session options for Lambda rather than for a dedicated server.

    - Threads: one intra-op thread per vCPU the function really has (``available_cpus``: Lambda gives 1 vCPU per
      1,769 MB, while onnxruntime's default reads the cores it sees and oversubscribes); no inter-op parallelism,
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


# "At 1,769 MB, a function has the equivalent of one vCPU (one vCPU-second of credits per second)": AWS Lambda
# Developer Guide, "Configuring Lambda function memory". The cores a function sees are not that share: Lambda shows
# 2 from 128 to 3,008 MB and up to 6 at 10,240 MB, and throttles the process to its memory's share of them.
MB_PER_VCPU = 1769


def available_cpus(environ: Mapping[str, str] = os.environ) -> int:
    """The vCPUs whose time the function really has: the cores it sees, and on Lambda no more than its memory's
    share of them (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, which the runtime sets: Lambda Developer Guide, "Defined
    runtime environment variables"), at least one. A 1,024 MB function sees 2 cores but has 0.58 of one: a second
    intra-op thread there only splits a quota that the first one alone uses up, and adds a wake-up to every run."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory = environ.get(Env.FUNCTION_MEMORY_SIZE.name, "")
    if memory.isdigit():
        return max(1, min(cores, int(memory) // MB_PER_VCPU))
    return cores


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
        self.non_finite_inputs: frozenset[str] = frozenset()
        self._session: ort.InferenceSession | None = None

    def load(self) -> OnnxModel:
        try:
            session = ort.InferenceSession(
                str(self.path), sess_options=session_options(self.intra_op_threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f"onnxruntime cannot load {self.path.name}: {exc}") from exc
        unranked = unranked_values(self.path)
        inputs = [TensorSpec.of(a, ranked=a.name not in unranked) for a in session.get_inputs()]
        unsupported = [i.describe() for i in inputs if not i.is_tensor]
        if unsupported:
            raise ModelLoadError(f"model inputs must be tensors; not supported: {', '.join(unsupported)}")
        self.inputs = {i.name: i for i in inputs}
        outputs = (TensorSpec.of(a, ranked=a.name not in unranked) for a in session.get_outputs())
        self.outputs = {o.name: o for o in outputs}
        declared = session.get_modelmeta().custom_metadata_map.get(NON_FINITE_INPUTS_KEY, "")
        names = {n.strip() for n in declared.split(",") if n.strip()}
        self.non_finite_inputs = frozenset(self.inputs if "*" in names else names & set(self.inputs))
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

    def accepts_non_finite(self, name: str) -> bool:
        """Whether the model declares (metadata_props) that input ``name`` may carry NaN/Inf."""
        return name in self.non_finite_inputs

    def check(self, name: str, datatype: str, shape: list[int]) -> TensorSpec:
        """The input's spec, after checking a request's name, datatype, rank, fixed dims and row count."""
        spec = self.inputs.get(name)
        if spec is None:
            raise BadRequest(f"unknown input '{name}': model '{self.name}' expects {self.expected_inputs()}")
        if datatype != spec.datatype:
            raise BadRequest(f"input '{name}' has datatype {datatype}; model '{self.name}' expects {spec.datatype}")
        if not spec.ranked:
            if len(shape) > MAX_RANK:
                raise BadRequest(f"input '{name}' has {len(shape)} dimensions; a tensor has at most {MAX_RANK}")
        elif len(shape) != len(spec.shape):
            raise BadRequest(
                f"input '{name}' has shape {shape} (rank {len(shape)}); model '{self.name}' expects rank "
                f"{len(spec.shape)}: {spec.describe()}"
            )
        else:
            for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
                if want is not None and got != want:
                    raise BadRequest(
                        f"input '{name}' has {got} at dimension {axis} of shape {shape}; model '{self.name}' "
                        f"expects {want}: {spec.describe()}"
                    )
        # Rows are bounded wherever the first dimension is the client's to choose (dynamic, or any rank at all).
        if shape and (not spec.ranked or spec.shape[0] is None) and shape[0] > self.max_batch_rows:
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
                # One rule for non-finite answers: NaN/Inf that came in (from an input the model declares may
                # carry them) and came out is the client's; from finite inputs it is the model's failure.
                sources = [n for n, a in feeds.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
                if sources:
                    raise BadRequest(
                        f"input '{sources[0]}' holds NaN/Inf, and model '{self.name}' answered {bad} non-finite "
                        f"value(s) in output '{name}' from it; send finite values"
                    )
                raise NonFiniteOutput(
                    f"model '{self.name}' version {self.version} produced {bad} non-finite value(s) (NaN/Inf) "
                    f"in output '{name}'"
                )
        return results


def unranked_values(path: Path) -> frozenset[str]:
    """The graph inputs and outputs whose ONNX type has no shape at all: of unknown rank, not scalars.

    onnxruntime reports both as shape [], so the model file itself is read, as protobuf wire format (the onnx
    package is not in the Lambda layer): ModelProto.graph (field 7) -> GraphProto.input (11) and output (12) ->
    ValueInfoProto name (1) and type (2) -> TypeProto.tensor_type (1) -> whether TypeProto.Tensor has its shape
    (2). The file is memory-mapped, so a large model's weights are skipped over, never read into memory.
    """
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            unranked = set()
            for graph in _messages(buf, 0, len(buf), 7):
                for value_info in (*_messages(buf, *graph, 11), *_messages(buf, *graph, 12)):
                    names = [bytes(buf[a:b]).decode("utf-8") for a, b in _messages(buf, *value_info, 1)]
                    tensors = [t for type_ in _messages(buf, *value_info, 2) for t in _messages(buf, *type_, 1)]
                    if names and tensors and not any(True for t in tensors for _ in _messages(buf, *t, 2)):
                        unranked.add(names[-1])
            return frozenset(unranked)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return frozenset()  # unreadable here: onnxruntime loaded it, so fall back to its shapes


def _messages(buf: mmap.mmap, start: int, end: int, number: int) -> Iterator[tuple[int, int]]:
    """The (start, end) offsets of every length-delimited field ``number`` in the message buf[start:end]."""
    position = start
    while position < end:
        key, position = _varint(buf, position)
        wire = key & 7
        if wire == 0:
            _, position = _varint(buf, position)
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        elif wire == 2:
            length, position = _varint(buf, position)
            if key >> 3 == number:
                yield position, position + length
            position += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if position != end:
        raise ValueError("truncated protobuf message")


def _varint(buf: mmap.mmap, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def count_non_finite(value: Any) -> int:
    """How many NaN/Inf a model output holds: float tensors, or the floats inside sequences of maps."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return 0
        return int(value.size - np.count_nonzero(np.isfinite(value)))
    if isinstance(value, list):
        return sum(map(count_non_finite, value))
    if isinstance(value, dict):
        # A map of finite numbers (a classifier's ZipMap row) is answered in one pass, without a call per value.
        try:
            if all(map(math.isfinite, value.values())):
                return 0
        except (TypeError, OverflowError):  # a value that is no number (or an integer past a float): count below
            pass
        return sum(map(count_non_finite, value.values()))
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    return 0
