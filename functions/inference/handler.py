"""Lambda entry point: Powertools wiring around InferenceService. Routes parse, call one operation, answer.

Metrics (EMF; names, units and dimensions from catalog.py) are what the rollout alarms watch: one record per
inference request with Requests, RequestLatency, ClientErrors, ModelErrors, NonFiniteOutputs, Unavailable, and
Rows, ModelLatency, ColdStart when they apply; with data capture on, CapturedRecords and CaptureDropped. Only
inference requests count, so health checks never dilute a version's error rate. ArtifactFetchRetries counts the
retries of a model load that failed for a cause that may pass (see service.py), on the request that made each
one; every load attempt is logged ("model loaded" / "model not served") with its number, its cause and when the
next one is due.

Routes: each GET route answers HEAD too (GET without the body; API Gateway's ANY method passes HEAD on), a known
path with another method answers 405 with Allow, and any other path 404.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from .prefetch import start as _start_prefetch  # stdlib, store and s3get only: nothing heavy yet

# First of all, while the imports below take their few hundred milliseconds of CPU, the model is downloading.
_prefetch = _start_prefetch(os.environ)


def _without_other_resolvers(package: str) -> None:
    """Let ``package``'s submodules import without running its ``__init__`` until an attribute of it is asked for.

    Powertools' ``event_handler/__init__.py`` imports every resolver it has (AppSync with asyncio, Bedrock agents,
    VPC Lattice, Lambda function URLs, ...) for a function that uses the REST one: 30-50 ms of CPU in each cold
    start. Registered unexecuted, the package still finds its submodules (``__path__`` is set); the first lookup of
    a name on it (``from aws_lambda_powertools.event_handler import AppSyncResolver``, anywhere) runs the real
    ``__init__`` and answers, so nothing that imports the package as documented sees a difference.
    """
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)

    def lookup(name: str) -> Any:
        submodule = f"{package}.{name}"
        if submodule in sys.modules or importlib.util.find_spec(submodule) is not None:
            return importlib.import_module(submodule)  # `from package import submodule` needs no __init__
        del module.__dict__["__getattr__"]
        assert spec.loader is not None
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__dict__["__getattr__"] = lookup
    sys.modules[package] = module


_without_other_resolvers("aws_lambda_powertools.event_handler")

import orjson  # noqa: E402
from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from aws_lambda_powertools.event_handler.api_gateway import (  # noqa: E402
    APIGatewayRestResolver,
    Response,
    ResponseBuilder,
)
from aws_lambda_powertools.metrics import MetricUnit  # noqa: E402

from .catalog import (  # noqa: E402
    ARTIFACT_FETCH_RETRIES,
    CAPTURE_DROPPED,
    CAPTURED_RECORDS,
    CLIENT_ERRORS,
    COLD_START,
    METRICS,
    MODEL_ERRORS,
    MODEL_LATENCY,
    NAMESPACE,
    NON_FINITE_OUTPUTS,
    REQUEST_LATENCY,
    REQUESTS,
    ROWS,
    UNAVAILABLE,
    Dimension,
    Env,
    Function,
    Metric,
)
from .errors import ApiError, MethodNotAllowed, ModelFault, NotFound  # noqa: E402
from .protocol import dumps  # noqa: E402
from .service import InferenceService, LoadAttempt, Outcome  # noqa: E402

JSON = "application/json"

logger = Logger(service="modelrail-inference")
metrics = Metrics(namespace=os.environ.get(Env.METRICS_NAMESPACE.name, NAMESPACE))


class _ResponseBuilder(ResponseBuilder):  # type: ignore[type-arg]
    """Powertools' response building, less one step that cannot change an answer of this API.

    Before every answer, Powertools looks for gzip in the request's Accept-Encoding, reading it from a
    case-insensitive copy of all of the request's multi-value headers (API Gateway passes a dozen or more), and
    only then looks whether the route or the response asked for compression at all. None of ours does, so the
    answer is "no compression" whatever the client accepts: said first, the headers are not copied.
    """

    @staticmethod
    def _has_compression_enabled(route_compression: bool, response_compression: bool | None, event: Any) -> bool:
        if not route_compression and not response_compression:
            return False
        return ResponseBuilder._has_compression_enabled(route_compression, response_compression, event)


class _Resolver(APIGatewayRestResolver):
    def __init__(self) -> None:
        super().__init__()
        self._response_builder_class = _ResponseBuilder


app = _Resolver()


# This invocation's metrics, in the shape Powertools' own metric set has ({name: {Unit, StorageResolution, Value}}),
# printed at its end as one EMF record by Metrics.serialize_metric_set. Filled here rather than by add_metric, which
# validates the name and unit and formats a debug message on every call: ~8 us a metric, 70 us a request, for
# names and units that are the catalog's own and were checked once, at import (_UNITS).
_pending: dict[str, list[float]] = {}  # metric name -> this invocation's values, in the order they came
_UNITS = {m.name: MetricUnit(m.unit).value for m in METRICS if m.publisher is Function.INFERENCE}
_METRICS_DISABLED = os.environ.get("POWERTOOLS_METRICS_DISABLED", "false").lower() in ("true", "1")


def _add(metric: Metric, value: float) -> None:
    values = _pending.get(metric.name)
    if values is None:
        _pending[metric.name] = [float(value)]
    else:
        values.append(float(value))


# Per set of metric names (a handful: one per request outcome), the parts of the EMF record that never change:
# Powertools' own serialization of the first such record, less its timestamp and values.
_RECORD_PARTS: dict[tuple[str, ...], tuple[Any, dict[str, Any]]] = {}


def _flush_metrics() -> None:
    if _pending and not _METRICS_DISABLED:
        names = tuple(_pending)
        parts = _RECORD_PARTS.get(names)
        if parts is None:
            shaped = {n: {"Unit": _UNITS[n], "StorageResolution": 60, "Value": v} for n, v in _pending.items()}
            first: dict[str, Any] = dict(metrics.serialize_metric_set(metrics=shaped, dimensions=metrics.dimension_set))
            static = {k: v for k, v in first.items() if k != "_aws" and k not in _pending}
            parts = _RECORD_PARTS[names] = (first["_aws"]["CloudWatchMetrics"], static)
        definitions, static = parts
        timestamp = int(time.time() * 1000)
        record = {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": definitions}, **static, **_pending}
        # The record Powertools would print, compact, with orjson's speed; one write, where print makes two.
        sys.stdout.write(orjson.dumps(record).decode() + "\n")
    _pending.clear()


def _on_load_attempt(attempt: LoadAttempt) -> None:
    where = {"model": attempt.model, "version": attempt.version, "attempt": attempt.number}
    if attempt.number > 1:
        # A retry runs inside a request, so the count lands in that request's EMF record (never at import).
        _add(ARTIFACT_FETCH_RETRIES, 1)
    if attempt.failure is None:
        logger.info("model loaded", extra={**where, "sha256": attempt.sha256})
    else:
        logger.error("model not served", extra={**where, "cause": attempt.failure, "retry_in_s": attempt.retry_in_s})


service = InferenceService.from_environment(os.environ, on_attempt=_on_load_attempt, prefetch=_prefetch)
metrics.set_default_dimensions(**{Dimension.MODEL_NAME: service.name, Dimension.MODEL_VERSION: service.version})
_cold_start = True


def _after_restore() -> None:
    random.seed()  # the module's generator (Powertools' log sampling) is the snapshot's too: reseed from os.urandom
    service.after_restore()


try:
    # Lambda's Python managed runtimes provide snapshot_restore_py (the layer leaves it out); it runs these hooks
    # only on functions with SnapStart: before the snapshot of a published version's init, and after each restore.
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # not a Lambda runtime, nor a test environment with the PyPI package: nothing snapshots this
    pass
else:
    register_before_snapshot(service.before_snapshot)
    register_after_restore(_after_restore)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=JSON, body=dumps(body).decode(), headers=headers)


def _infer(name: str, version: str | None, v1: bool) -> Response:
    outcome: Outcome = app.context["outcome"]
    outcome.inference = True
    # The event's own fields, not Powertools' properties: its `headers` copies them into a case-insensitive dict on
    # every access, which service.infer would copy again to lowercase them.
    event = app.current_event.raw_event
    document, binary = service.infer(
        outcome,
        name,
        version,
        event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
        headers=event.get("headers"),
        v1=v1,
        request_id=(event.get("requestContext") or {}).get("requestId"),
    )
    if binary is None:
        return _json(document)
    header = dumps(document)
    return Response(
        status_code=200,
        content_type="application/octet-stream",
        body=header + binary,  # bytes: Powertools base64-encodes it for API Gateway
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


# A path segment that can be a model name or version: what the 405 answer matches paths against. Powertools'
# own <name> also matches ':' and '@', so its POST /v1/models/<name> would claim /v1/models/iris:explain.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_ALLOWED: list[tuple[re.Pattern[str], str]] = []  # (path, methods it answers): 405 or 404 for the rest

Route = Callable[..., Response]


def _route(method: str, path: str) -> Callable[[Route], Route]:
    """Registers ``method path``; a GET route answers HEAD too, as GET without the body (RFC 9110, 9.3.2)."""

    def register(view: Route) -> Route:
        app.route(path, method=method)(view)
        methods = method
        if method == "GET":
            app.route(path, method="HEAD")(_headless(view))
            methods = "GET, HEAD"
        _ALLOWED.append((re.compile(re.sub(r"<\w+>", _SEGMENT, path) + "/*"), methods))
        return view

    return register


def _headless(view: Route) -> Route:
    @functools.wraps(view)
    def head(**params: str) -> Response:
        response = view(**params)
        response.body = ""
        return response

    return head


def _readiness(body: dict[str, Any]) -> Response:
    return _json(body, 200 if body["ready"] else 503)


@_route("GET", "/v2")
def server_metadata() -> Response:
    return _json(service.server_metadata())


@_route("GET", "/v2/health/live")
def live() -> Response:
    return _json({"live": True})


@_route("GET", "/v2/health/ready")
def ready() -> Response:
    body = service.readiness()
    del body["name"]
    return _readiness(body)


@_route("GET", "/v2/models/<name>")
def model_metadata(name: str) -> Response:
    return _json(service.metadata(name))


@_route("GET", "/v2/models/<name>/versions/<version>")
def model_version_metadata(name: str, version: str) -> Response:
    return _json(service.metadata(name, version))


@_route("GET", "/v2/models/<name>/ready")
def model_ready(name: str) -> Response:
    service.check_name(name)
    return _readiness(service.readiness())


@_route("GET", "/v2/models/<name>/versions/<version>/ready")
def model_version_ready(name: str, version: str) -> Response:
    service.check_name(name, version)
    return _readiness(service.readiness())


@_route("POST", "/v2/models/<name>/infer")
def infer(name: str) -> Response:
    return _infer(name, None, v1=False)


@_route("POST", "/v2/models/<name>/versions/<version>/infer")
def infer_version(name: str, version: str) -> Response:
    return _infer(name, version, v1=False)


@_route("GET", "/v1/models/<name>")
def v1_model(name: str) -> Response:
    service.check_name(name)
    return _readiness(service.readiness())


@_route("POST", "/v1/models/<name>:predict")
def v1_predict(name: str) -> Response:
    return _infer(name, None, v1=True)


@app.not_found
def not_found(_: Exception) -> Response:
    event = app.current_event
    path = event.path
    for pattern, methods in _ALLOWED:
        if pattern.fullmatch(path):
            message = f"{event.http_method} is not allowed on {path}; use {methods}"
            return api_error(MethodNotAllowed(message, headers={"Allow": methods}))
    return api_error(NotFound(f"no route {path}; see GET /v2 and /v2/models/{service.name}"))


@app.exception_handler(ApiError)
def api_error(exc: ApiError) -> Response:
    if exc.status >= 500:
        logger.error("request failed", extra={"status": exc.status, "error": exc.message})
    response = _json({"error": exc.message}, exc.status, exc.headers)
    if app.current_event.http_method == "HEAD":
        response.body = ""
    return response


@app.exception_handler(Exception)
def unexpected_error(exc: Exception) -> Response:
    logger.exception("unexpected failure")
    outcome: Outcome | None = app.context.get("outcome")
    if outcome is not None:
        outcome.kind = "model_error"
    return api_error(ModelFault(f"internal error while serving model '{service.name}': {type(exc).__name__}"))


# Each outcome's 0/1 in the four metrics the rollout alarms divide by Requests, every one of them on every record.
_OUTCOME_COUNTS = {
    kind: tuple(
        (metric, float(kind == counted))
        for counted, metric in (
            ("client_error", CLIENT_ERRORS),
            ("model_error", MODEL_ERRORS),
            ("non_finite", NON_FINITE_OUTPUTS),
            ("unavailable", UNAVAILABLE),
        )
    )
    for kind in ("ok", "client_error", "model_error", "non_finite", "unavailable")
}


def _record(outcome: Outcome, elapsed_ms: float) -> None:
    _add(REQUESTS, 1)
    _add(REQUEST_LATENCY, elapsed_ms)
    for metric, value in _OUTCOME_COUNTS[outcome.kind]:
        _add(metric, value)
    if outcome.kind == "ok":
        _add(ROWS, outcome.rows)
    if outcome.model_ms is not None:
        _add(MODEL_LATENCY, outcome.model_ms)
    if service.capture is not None:
        captured, dropped = service.capture.take_counts()
        if captured:
            _add(CAPTURED_RECORDS, captured)
        if dropped:
            _add(CAPTURE_DROPPED, dropped)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _cold_start
    try:
        if _cold_start:
            _cold_start = False
            _add(COLD_START, 1)
        # The correlation id is API Gateway's request id, as Powertools' inject_lambda_context would set it from
        # correlation_paths.API_GATEWAY_REST, at a tenth of its per-request cost.
        # (set_correlation_id is append_keys(correlation_id=...): one call sets both keys.)
        logger.append_keys(
            correlation_id=(event.get("requestContext") or {}).get("requestId"),
            function_request_id=getattr(context, "aws_request_id", None),
        )
        started = time.perf_counter()
        outcome = Outcome()
        app.append_context(outcome=outcome)
        response = app.resolve(event, context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if outcome.inference:
            _record(outcome, elapsed_ms)
        _stamp(response, outcome, elapsed_ms)
        return response
    finally:
        _flush_metrics()  # as Powertools' log_metrics does: whatever happened, this invocation's record is printed


if os.environ.get(Env.POWERTOOLS_TRACE_DISABLED.name, "false").lower() not in ("true", "1"):
    # X-Ray tracing is opt-in (the deployment spec's `tracing`): importing the X-Ray SDK alone adds about half
    # a second to every cold start, so it is loaded only when the function is configured to trace.
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service="modelrail-inference")
    lambda_handler = tracer.capture_lambda_handler(capture_response=False)(lambda_handler)


def _stamp(response: dict[str, Any], outcome: Outcome, elapsed_ms: float) -> None:
    """Every answer names the version that served it, errors included, and how long the function took
    (Server-Timing: what the acceptance gate's latency probe reads, free of network and invoke overhead)."""
    timing = f"total;dur={elapsed_ms:.3f}"
    if outcome.model_ms is not None:
        timing += f", model;dur={outcome.model_ms:.3f}"
    stamps = {"x-model-version": service.version, "server-timing": timing, "x-environment-id": service.environment_id}
    if "multiValueHeaders" in response:
        response["multiValueHeaders"].update({k: [v] for k, v in stamps.items()})
    else:
        response.setdefault("headers", {}).update(stamps)
