"""Warm latency of one model, in a process of its own: ``python -m bench.warm SPEC.json OUT.json``.

The handler module loads one model per process at import, from this process's environment (set by the
parent: the embedded S3, the model's URI and sha256, a fresh cache dir), exactly as a Lambda execution
environment does. The variants are timed call by call, interleaved in a rotating order, so that the noise
of a shared machine falls on all of them alike:

- raw: ``session.run`` on the numpy tensor, in a session with the handler's own session options;
- handler: ``lambda_handler`` on the API Gateway REST proxy event carrying the v2 JSON request;
- protocol: the same request through ``InferenceService.infer`` and ``dumps`` (decode, check, run, encode),
  without Powertools and the resolver: splits the handler's overhead into protocol work and the rest;
- naive: stdlib ``json.loads``, ``np.array``, ``session.run``, ``json.dumps`` of ``.tolist()``;
- minimal: ``orjson.loads``, ``np.array``, ``session.run``, ``orjson.dumps`` of the arrays: what any JSON handler
  in Python pays at the least, with no check of the request, no routing, no metrics and no logs;
- binary: ``lambda_handler`` on the same tensor sent with the binary tensor data extension (JSON header, then
  raw little-endian FP32), when the protocol module offers it.

The protocol and binary variants follow the inference function's interface as it stands; if it has moved on,
they are left out of the figures (and named in ``skipped``) rather than failing the run.
"""

from __future__ import annotations

import base64
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from bench.models import Case, v2_binary_request, v2_request
from bench.stats import summarize

JSON = "application/json"


def _outputs(names: list[str], values: list[Any], *, as_lists: bool) -> list[dict[str, Any]]:
    """The v2 outputs of a session's answer: each tensor flat (a Python list, or the array for orjson)."""
    return [
        {
            "name": name,
            "shape": list(np.shape(value)) if isinstance(value, np.ndarray) else [len(value)],
            "data": (value.ravel().tolist() if as_lists else value.reshape(-1))
            if isinstance(value, np.ndarray)
            else value,
        }
        for name, value in zip(names, values, strict=True)
    ]


def _naive_handler(session: ort.InferenceSession, model_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    output_names = [o.name for o in session.get_outputs()]

    def handle(event: dict[str, Any]) -> dict[str, Any]:
        body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"]
        document = json.loads(body)
        feeds = {t["name"]: np.array(t["data"], dtype=np.float32).reshape(t["shape"]) for t in document["inputs"]}
        outputs = _outputs(output_names, session.run(None, feeds), as_lists=True)
        body = json.dumps({"model_name": model_name, "id": document.get("id"), "outputs": outputs})
        return {"statusCode": 200, "headers": {"content-type": JSON}, "body": body}

    return handle


def _minimal_handler(session: ort.InferenceSession, model_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    output_names = [o.name for o in session.get_outputs()]
    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # iris's probabilities are maps keyed by class

    def handle(event: dict[str, Any]) -> dict[str, Any]:
        document = orjson.loads(event["body"])
        feeds = {t["name"]: np.array(t["data"], dtype=np.float32).reshape(t["shape"]) for t in document["inputs"]}
        outputs = _outputs(output_names, session.run(None, feeds), as_lists=False)
        body = orjson.dumps({"model_name": model_name, "id": document.get("id"), "outputs": outputs}, option=options)
        return {"statusCode": 200, "headers": {"content-type": JSON}, "body": body.decode()}

    return handle


class Mismatch(Exception):
    """A variant did not answer what raw ``session.run`` answers."""


def _check(variant: str, raw: list[Any], response: dict[str, Any]) -> None:
    """Raise unless an answer is a 200 carrying the raw session's first output."""
    if response.get("statusCode") != 200:
        raise Mismatch(f"{variant} answered {response.get('statusCode')}: {str(response.get('body'))[:300]}")
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body)
    document = orjson.loads(body)
    first = document["outputs"][0]
    got = np.asarray(first["data"]).reshape(first["shape"])
    if not np.allclose(got, raw[0], rtol=1e-5, atol=1e-6):
        raise Mismatch(f"{variant}'s output '{first['name']}' differs from raw session.run")


def _protocol_call(
    service: Any, model: str, event: dict[str, Any], dumps: Callable[[Any], bytes]
) -> Callable[[], bytes]:
    """``service.infer`` then ``dumps`` on the event's body: the protocol work of one request, without Powertools."""
    from functions.inference.service import Outcome

    accepts = inspect.signature(service.infer).parameters
    kwargs: dict[str, Any] = {"headers": {"content-type": JSON}} if "headers" in accepts else {"content_type": JSON}
    kwargs["is_base64"] = bool(event.get("isBase64Encoded"))
    body = event["body"]

    def call() -> bytes:
        result = service.infer(Outcome(), model, None, body, **kwargs)
        return dumps(result[0] if isinstance(result, tuple) else result)

    return call


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    case = Case(**spec["case"])
    started = time.perf_counter()
    from functions.acceptance.events import rest_proxy_event
    from functions.inference import handler, protocol
    from functions.inference.model import session_options
    from modelrail.local.worker import LambdaContext

    init_ms = (time.perf_counter() - started) * 1000
    if not handler.service.ready:
        raise SystemExit(f"{case.label}: the handler serves no model: {handler.service.failure}")

    session = ort.InferenceSession(
        spec["model_path"], sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    tensor = case.tensor()
    feeds = {case.input_name: tensor}
    body = v2_request(case, tensor)
    headers = {"accept": JSON, "content-type": JSON, "host": "bench.local", "user-agent": "modelrail-bench"}
    event = rest_proxy_event("POST", f"/v2/models/{case.model}/infer", headers, body)
    context = LambdaContext(f"modelrail-{case.model}", "1", 1024, 30.0)
    naive = _naive_handler(session, case.model)
    minimal = _minimal_handler(session, case.model)
    variants: dict[str, Callable[[], Any]] = {
        "raw": lambda: session.run(None, feeds),
        "handler": lambda: handler.lambda_handler(event, context),
        "naive": lambda: naive(event),
        "minimal": lambda: minimal(event),
    }
    raw = session.run(None, feeds)
    try:
        _check("handler", raw, handler.lambda_handler(event, context))
        _check("naive", raw, naive(event))
        _check("minimal", raw, minimal(event))
    except Mismatch as exc:
        raise SystemExit(f"{case.label}: {exc}") from None

    optional: dict[str, Callable[[], Callable[[], Any]]] = {
        "protocol": lambda: _protocol_call(handler.service, case.model, event, protocol.dumps),
    }
    binary_header = getattr(protocol, "BINARY_HEADER", None)
    if binary_header:
        header, data = v2_binary_request(case, tensor)
        binary_headers = {**headers, "content-type": "application/octet-stream", binary_header: str(len(header))}
        binary_event = rest_proxy_event(
            "POST",
            f"/v2/models/{case.model}/infer",
            binary_headers,
            header + data,
            binary_media_types=protocol.BINARY_MEDIA_TYPES,
        )
        optional["binary"] = lambda: lambda: handler.lambda_handler(binary_event, context)
    skipped: dict[str, str] = {}
    for name, make in optional.items():
        try:
            call = make()
            answer = call()
            _check(name, raw, answer if isinstance(answer, dict) else {"statusCode": 200, "body": answer})
        except Exception as exc:  # the function's interface moved on: leave this variant out, say why
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        variants[name] = call

    for _ in range(case.warmup):
        for call in variants.values():
            call()

    order = list(variants)
    samples: dict[str, list[int]] = {name: [] for name in order}
    clock = time.perf_counter_ns
    for i in range(case.iterations):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            call = variants[name]
            t0 = clock()
            call()
            samples[name].append(clock() - t0)
    return {
        "case": spec["case"],
        "request_bytes": len(body),
        "skipped": skipped,
        "handler_init_ms": round(init_ms, 1),
        "variants": {name: summarize(ns) for name, ns in samples.items()},
    }


def main(argv: list[str]) -> None:
    spec_path, out_path = map(Path, argv)
    result = measure(json.loads(spec_path.read_text()))
    out_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
