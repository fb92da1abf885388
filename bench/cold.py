"""A cold start, as a fresh process: ``python -m bench.cold handler EVENT.json`` or ``... floor SPEC.json``.

Only the standard library is imported before the first checkpoint: everything the process needs to answer
counts. The process prints one line, ``BENCH-RESULT {json}``, as soon as it has its first answer; the parent
times Popen to that line. The checkpoints are ``time.perf_counter()`` values, which on Linux read the
system-wide CLOCK_MONOTONIC, so the parent can place them on its own timeline.

- handler: import the handler's dependencies, then the handler module (its cold start: S3 client, fetch
  from the embedded S3 into a fresh MODEL_CACHE_DIR, sha256 verification, onnxruntime session), then the
  first answer of ``lambda_handler`` to one API Gateway event.
- floor: import onnxruntime, create the session from a local file (same session options), run once.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "BENCH-RESULT "
_clock = time.perf_counter


class _Context:
    """What Powertools reads from Lambda's context object (the local worker's class costs a multiprocessing import)."""

    function_name = "modelrail-bench"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:modelrail-bench:1"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/modelrail-bench"
    log_stream_name = "local/1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _timed(owner: Any, attribute: str, phases: dict[str, float], phase: str) -> None:
    """Wrap ``owner.attribute`` so that its calls add to ``phases[phase]`` (ms). Missing names are skipped."""
    original: Callable[..., Any] | None = getattr(owner, attribute, None)
    if original is None:
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _clock()
        try:
            return original(*args, **kwargs)
        finally:
            phases[phase] = phases.get(phase, 0.0) + (_clock() - started) * 1000

    setattr(owner, attribute, wrapper)


def handler(event_path: str) -> dict[str, Any]:
    marks = {"start": _clock()}
    from functions.inference.handler import lambda_handler, service

    marks["handler_init"] = _clock()
    # The service's own account of its cold start (env check, S3 client, the part of the fetch the imports did
    # not overlap, session), which the parent subtracts from the import; what remains is imports and Powertools.
    phases = dict(service.init_phases_ms)
    fetch: dict[str, Any] = {}
    report = service.fetch_report
    if report is not None:
        fetch = {
            "bytes": report.size,
            "gets": report.gets,
            "seconds": report.seconds,
            "sha256_ms": report.digest_seconds * 1000,
        }
    event = json.loads(Path(event_path).read_text())
    response = lambda_handler(event, _Context())
    marks["answer"] = _clock()
    return {
        "marks": marks,
        "phases": phases,
        "fetch": fetch,
        "status": response.get("statusCode"),
        "body": response.get("body"),
    }


def floor(spec_path: str) -> dict[str, Any]:
    marks = {"start": _clock()}
    import numpy as np
    import onnxruntime as ort

    from functions.inference.model import session_options

    marks["imports"] = _clock()
    spec = json.loads(Path(spec_path).read_text())
    session = ort.InferenceSession(
        spec["model_path"], sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    marks["session"] = _clock()
    row = np.asarray(spec["row"], dtype=np.float32).reshape(1, -1)
    outputs = session.run(None, {spec["input_name"]: row})
    marks["answer"] = _clock()
    return {"marks": marks, "status": 200, "first_output": np.asarray(outputs[0]).ravel().tolist()}


def main(argv: list[str]) -> None:
    kind, path = argv
    result = handler(path) if kind == "handler" else floor(path)
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
