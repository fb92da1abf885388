"""Lambda entry point: Powertools wiring around InferenceService. Routes parse, call one operation, answer.

Metrics (EMF, namespace ``modelrail``, dimensions ModelName and ModelVersion) are what the rollout alarms
watch: Requests, ClientErrors, ModelErrors, NonFiniteOutputs, Unavailable, RequestLatency, ModelLatency, Rows,
ColdStart; with data capture on, CapturedRecords and CaptureDropped. Only inference requests count, so health
checks never dilute a version's error rate.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

from .errors import ApiError, MethodNotAllowed, ModelFault
from .protocol import dumps
from .service import InferenceService, Outcome

NAMESPACE = "modelrail"
# Health and metadata requests publish no metrics by design; Powertools would warn on each of them.
warnings.filterwarnings("ignore", message="No application metrics to publish")
JSON = "application/json"

logger = Logger(service="modelrail-inference")
metrics = Metrics(namespace=os.environ.get("METRICS_NAMESPACE", NAMESPACE))
app = APIGatewayRestResolver()

service = InferenceService.from_environment(os.environ)
metrics.set_default_dimensions(ModelName=service.name, ModelVersion=service.version)
if service.failure:
    logger.error(
        "model not served", extra={"model": service.name, "version": service.version, "cause": service.failure}
    )
else:
    logger.info("model loaded", extra={"model": service.name, "version": service.version, "sha256": service.sha256})
_cold_start = True


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=JSON, body=dumps(body).decode(), headers=headers)


def _infer(name: str, version: str | None, v1: bool) -> Response:
    outcome: Outcome = app.context["outcome"]
    outcome.inference = True
    event = app.current_event
    document, binary = service.infer(
        outcome,
        name,
        version,
        event.body,
        is_base64=bool(event.is_base64_encoded),
        headers=event.headers,
        v1=v1,
        request_id=event.request_context.request_id,
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


@app.get("/v2")
def server_metadata() -> Response:
    return _json(service.server_metadata())


@app.get("/v2/health/live")
def live() -> Response:
    return _json({"live": True})


@app.get("/v2/health/ready")
def ready() -> Response:
    return _json({"ready": service.ready}, 200 if service.ready else 503)


@app.get("/v2/models/<name>")
def model_metadata(name: str) -> Response:
    return _json(service.metadata(name))


@app.get("/v2/models/<name>/versions/<version>")
def model_version_metadata(name: str, version: str) -> Response:
    return _json(service.metadata(name, version))


@app.get("/v2/models/<name>/ready")
def model_ready(name: str) -> Response:
    service.check_name(name)
    return _json(service.readiness(), 200 if service.ready else 503)


@app.get("/v2/models/<name>/versions/<version>/ready")
def model_version_ready(name: str, version: str) -> Response:
    service.check_name(name, version)
    return _json(service.readiness(), 200 if service.ready else 503)


@app.post("/v2/models/<name>/infer")
def infer(name: str) -> Response:
    return _infer(name, None, v1=False)


@app.post("/v2/models/<name>/versions/<version>/infer")
def infer_version(name: str, version: str) -> Response:
    return _infer(name, version, v1=False)


@app.get("/v1/models/<name>")
def v1_model(name: str) -> Response:
    service.check_name(name)
    return _json({"name": name, "ready": service.ready}, 200 if service.ready else 503)


@app.post("/v1/models/<name>:predict")
def v1_predict(name: str) -> Response:
    return _infer(name, None, v1=True)


_ALLOWED = {
    "/v2": "GET",
    "/v2/health/live": "GET",
    "/v2/health/ready": "GET",
    "/v2/models/<name>": "GET",
    "/v2/models/<name>/versions/<version>": "GET",
    "/v2/models/<name>/ready": "GET",
    "/v2/models/<name>/versions/<version>/ready": "GET",
    "/v2/models/<name>/infer": "POST",
    "/v2/models/<name>/versions/<version>/infer": "POST",
    "/v1/models/<name>": "GET",
    "/v1/models/<name>:predict": "POST",
}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

for _path, _method in _ALLOWED.items():

    def _not_allowed(allowed: str = _method, **_: str) -> Response:
        raise MethodNotAllowed(
            f"{app.current_event.http_method} is not allowed on {app.current_event.path}; use {allowed}",
            headers={"Allow": allowed},
        )

    app.route(_path, method=[m for m in _METHODS if m != _method])(_not_allowed)


@app.not_found
def not_found(_: Exception) -> Response:
    path = app.current_event.path
    return _json({"error": f"no route {path}; see GET /v2 and /v2/models/{service.name}"}, 404)


@app.exception_handler(ApiError)
def api_error(exc: ApiError) -> Response:
    if exc.status >= 500:
        logger.error("request failed", extra={"status": exc.status, "error": exc.message})
    return _json({"error": exc.message}, exc.status, exc.headers)


@app.exception_handler(Exception)
def unexpected_error(exc: Exception) -> Response:
    logger.exception("unexpected failure")
    outcome: Outcome | None = app.context.get("outcome")
    if outcome is not None:
        outcome.kind = "model_error"
    return api_error(ModelFault(f"internal error while serving model '{service.name}': {type(exc).__name__}"))


def _record(outcome: Outcome, elapsed_ms: float) -> None:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RequestLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    for kind, metric in (
        ("client_error", "ClientErrors"),
        ("model_error", "ModelErrors"),
        ("non_finite", "NonFiniteOutputs"),
        ("unavailable", "Unavailable"),
    ):
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=int(outcome.kind == kind))
    if outcome.kind == "ok":
        metrics.add_metric(name="Rows", unit=MetricUnit.Count, value=outcome.rows)
    if outcome.model_ms is not None:
        metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=outcome.model_ms)
    if service.capture is not None:
        captured, dropped = service.capture.take_counts()
        if captured:
            metrics.add_metric(name="CapturedRecords", unit=MetricUnit.Count, value=captured)
        if dropped:
            metrics.add_metric(name="CaptureDropped", unit=MetricUnit.Count, value=dropped)


@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _cold_start
    if _cold_start:
        _cold_start = False
        metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
    # The correlation id is API Gateway's request id, as Powertools' inject_lambda_context would set it from
    # correlation_paths.API_GATEWAY_REST, at a tenth of its per-request cost.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    logger.append_keys(function_request_id=getattr(context, "aws_request_id", None))
    started = time.perf_counter()
    outcome = Outcome()
    app.append_context(outcome=outcome)
    response = app.resolve(event, context)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if outcome.inference:
        _record(outcome, elapsed_ms)
    _stamp(response, outcome, elapsed_ms)
    return response


if os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() not in ("true", "1"):
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
    stamps = {"x-model-version": service.version, "server-timing": timing}
    if "multiValueHeaders" in response:
        response["multiValueHeaders"].update({k: [v] for k, v in stamps.items()})
    else:
        response.setdefault("headers", {}).update(stamps)
