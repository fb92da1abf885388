"""The catalog: every CloudWatch metric modelrail publishes or alarms on, and every environment variable its
functions read, each defined once; the handlers, the alarms, the dashboard, the operate commands and the
rehearsal all name them from here.

Stdlib only, and shipped inside each function: a function package goes to Lambda alone as a top-level package
and cannot import a sibling, so ``inference/``, ``acceptance/`` and ``monitor/`` each hold ``catalog.py`` (a
symlink to this file in the repository, a real file in the deployed code asset) and import ``.catalog``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

NAMESPACE = "modelrail"
"""The namespace of the inference function's EMF metrics and of the drift monitor's."""
LAMBDA_NAMESPACE = "AWS/Lambda"
STANDARD_RESOLUTION_S = 60
"""CloudWatch keeps a standard-resolution metric (Powertools' EMF default, and Lambda's own) per minute."""


class Dimension:
    """CloudWatch dimension names."""

    MODEL_NAME = "ModelName"
    MODEL_VERSION = "ModelVersion"
    """The Lambda version number that served (the runtime's AWS_LAMBDA_FUNCTION_VERSION)."""
    FEATURE = "Feature"
    FUNCTION_NAME = "FunctionName"
    RESOURCE = "Resource"
    """``<function>:<alias>`` for an invocation through the alias."""
    EXECUTED_VERSION = "ExecutedVersion"
    """The version an alias invocation ran on."""


MODEL_VERSION_SCOPE = (Dimension.MODEL_NAME, Dimension.MODEL_VERSION)
LAMBDA_VERSION_SCOPE = (Dimension.FUNCTION_NAME, Dimension.RESOURCE, Dimension.EXECUTED_VERSION)


class Function(StrEnum):
    """Who publishes a metric or reads a variable: modelrail's functions, or AWS Lambda itself."""

    INFERENCE = "inference"
    PRE_TRAFFIC = "pre-traffic"
    """The acceptance gate (CodeDeploy's BeforeAllowTraffic hook, and the first deploy's custom resource)."""
    POST_TRAFFIC = "post-traffic"
    MONITOR = "monitor"
    """The scheduled drift monitor and canary analysis."""
    AWS_LAMBDA = "aws-lambda"
    """Not ours: the Lambda service, which publishes the AWS/Lambda metrics of every function."""


class Cadence(StrEnum):
    """How often a metric gets a datapoint."""

    PER_REQUEST = "per request"
    """In the EMF record of each inference request (standard resolution: one-minute statistics)."""
    PER_MONITOR_RUN = "per monitor run"
    """Once per drift monitor run, every ``monitoring.schedule_minutes``."""
    EVERY_MINUTE = "every 60 s"
    """AWS Lambda's own metrics, one-minute statistics."""


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    """CloudWatch's unit name: Count, Milliseconds, Percent or None."""
    dimensions: tuple[str, ...]
    """The dimension set that scopes it to one version (what the rollout alarms use)."""
    publisher: Function
    cadence: Cadence
    description: str
    rollups: tuple[tuple[str, ...], ...] = ()
    """Other dimension sets it is also published with."""

    @property
    def namespace(self) -> str:
        return LAMBDA_NAMESPACE if self.publisher is Function.AWS_LAMBDA else NAMESPACE

    @property
    def dimension_sets(self) -> tuple[tuple[str, ...], ...]:
        return (self.dimensions, *self.rollups)

    def interval_s(self, monitor_schedule_minutes: int) -> int:
        """The shortest period in which every period can hold a datapoint (with traffic): a minute, or the
        monitor's schedule for what the monitor publishes."""
        if self.cadence is Cadence.PER_MONITOR_RUN:
            return monitor_schedule_minutes * 60
        return STANDARD_RESOLUTION_S


def _inference(name: str, unit: str, description: str) -> Metric:
    return Metric(name, unit, MODEL_VERSION_SCOPE, Function.INFERENCE, Cadence.PER_REQUEST, description)


def _monitor(name: str, unit: str, description: str, dimensions: tuple[str, ...] = MODEL_VERSION_SCOPE) -> Metric:
    return Metric(name, unit, dimensions, Function.MONITOR, Cadence.PER_MONITOR_RUN, description)


def _lambda(name: str, unit: str, description: str) -> Metric:
    rollups = ((Dimension.FUNCTION_NAME,),)
    return Metric(name, unit, LAMBDA_VERSION_SCOPE, Function.AWS_LAMBDA, Cadence.EVERY_MINUTE, description, rollups)


# --- the inference function: one EMF record per inference request (health and metadata routes publish none) ---

REQUESTS = _inference("Requests", "Count", "inference requests (1 each)")
CLIENT_ERRORS = _inference("ClientErrors", "Count", "requests answered 4xx (1 or 0 each)")
MODEL_ERRORS = _inference("ModelErrors", "Count", "requests the model failed to answer, 500 (1 or 0 each)")
NON_FINITE_OUTPUTS = _inference("NonFiniteOutputs", "Count", "answers refused for NaN or Inf outputs (1 or 0 each)")
UNAVAILABLE = _inference("Unavailable", "Count", "requests that found no model loaded, 503 (1 or 0 each)")
REQUEST_LATENCY = _inference("RequestLatency", "Milliseconds", "the handler's time for the request")
MODEL_LATENCY = _inference("ModelLatency", "Milliseconds", "onnxruntime's time for the request")
ROWS = _inference("Rows", "Count", "rows answered by a successful request")
COLD_START = _inference("ColdStart", "Count", "1 on the first request of an execution environment")
CAPTURED_RECORDS = _inference("CapturedRecords", "Count", "data capture records sent (when any)")
CAPTURE_DROPPED = _inference("CaptureDropped", "Count", "data capture records lost (when any)")
ARTIFACT_FETCH_RETRIES = _inference(
    "ArtifactFetchRetries", "Count", "retries of a model load that failed for a cause that may pass"
)

# --- the drift monitor: PutMetricData once per run -------------------------------------------------------------

CAPTURED_ROWS = Metric(
    "CapturedRows",
    "Count",
    MODEL_VERSION_SCOPE,
    Function.MONITOR,
    Cadence.PER_MONITOR_RUN,
    "rows captured in the run's window; by ModelName alone too, 0 when nothing was captured",
    rollups=((Dimension.MODEL_NAME,),),
)
FEATURE_DRIFT_MAX = _monitor("FeatureDriftMax", "None", "the largest feature PSI against the baseline")
PREDICTION_DRIFT = _monitor("PredictionDrift", "None", "the largest prediction PSI against the baseline")
FEATURE_DRIFT = _monitor(
    "FeatureDrift", "None", "one feature's PSI, for the worst features", (*MODEL_VERSION_SCOPE, Dimension.FEATURE)
)
PREDICTION_DIVERGENCE = _monitor(
    "PredictionDivergence", "None", "canary analysis: PSI of the new version's predictions against the old one's"
)
CANARY_DISAGREEMENT = _monitor(
    "CanaryDisagreement",
    "Percent",
    "paired canary analysis: share of the new version's captured requests the old version answers otherwise",
)

# --- AWS Lambda's own, per function -----------------------------------------------------------------------------

INVOCATIONS = _lambda("Invocations", "Count", "invocations that ran (throttled ones do not count)")
ERRORS = _lambda("Errors", "Count", "invocations that crashed or timed out")
THROTTLES = _lambda("Throttles", "Count", "invocation requests Lambda throttled")
DURATION = _lambda("Duration", "Milliseconds", "the function's run time per invocation")
CONCURRENT_EXECUTIONS = _lambda("ConcurrentExecutions", "Count", "execution environments serving at once")

METRICS: tuple[Metric, ...] = (
    REQUESTS,
    CLIENT_ERRORS,
    MODEL_ERRORS,
    NON_FINITE_OUTPUTS,
    UNAVAILABLE,
    REQUEST_LATENCY,
    MODEL_LATENCY,
    ROWS,
    COLD_START,
    CAPTURED_RECORDS,
    CAPTURE_DROPPED,
    ARTIFACT_FETCH_RETRIES,
    CAPTURED_ROWS,
    FEATURE_DRIFT_MAX,
    PREDICTION_DRIFT,
    FEATURE_DRIFT,
    PREDICTION_DIVERGENCE,
    CANARY_DISAGREEMENT,
    INVOCATIONS,
    ERRORS,
    THROTTLES,
    DURATION,
    CONCURRENT_EXECUTIONS,
)


def metric(namespace: str, name: str) -> Metric | None:
    """The catalog's metric of that namespace and name, None when there is none."""
    return next((m for m in METRICS if m.namespace == namespace and m.name == name), None)


# --- environment variables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    name: str
    readers: tuple[Function, ...]
    description: str
    required: bool = False
    """Every reader refuses to work without it (so the deployment must set it), but those in ``optional_for``."""
    optional_for: tuple[Function, ...] = ()
    """Readers that work without it (the pre-traffic hook's replay is skipped when data capture is off)."""


_HOOKS = (Function.PRE_TRAFFIC, Function.POST_TRAFFIC)


class Env:
    """The environment variables of modelrail's functions (``Env.MODEL_NAME.name`` is the variable's name)."""

    MODEL_NAME = EnvVar(
        "MODEL_NAME", (Function.INFERENCE, *_HOOKS), "the model's name in the API and its metrics", required=True
    )
    MODEL_URI = EnvVar("MODEL_URI", (Function.INFERENCE,), "s3://bucket/key of the model's artifact", required=True)
    MODEL_SHA256 = EnvVar(
        "MODEL_SHA256", (Function.INFERENCE,), "the artifact's sha256; a new model is a new version", required=True
    )
    MAX_BATCH_ROWS = EnvVar("MAX_BATCH_ROWS", (Function.INFERENCE,), "rows per request before a 413 (default 1024)")
    MODEL_CACHE_DIR = EnvVar(
        "MODEL_CACHE_DIR", (Function.INFERENCE,), "where the artifact is cached (default /tmp/modelrail-models)"
    )
    ORT_INTRA_OP_THREADS = EnvVar("ORT_INTRA_OP_THREADS", (Function.INFERENCE,), "onnxruntime's intra-op threads")
    METRICS_NAMESPACE = EnvVar(
        "METRICS_NAMESPACE", (Function.INFERENCE, Function.MONITOR), f"namespace of the metrics (default {NAMESPACE})"
    )
    POWERTOOLS_TRACE_DISABLED = EnvVar(
        "POWERTOOLS_TRACE_DISABLED", (Function.INFERENCE,), "'true': the handler never imports the X-Ray SDK"
    )
    CAPTURE_STREAM = EnvVar(
        "CAPTURE_STREAM", (Function.INFERENCE,), "the Firehose stream of data capture (off without)"
    )
    CAPTURE_SAMPLE_RATE = EnvVar("CAPTURE_SAMPLE_RATE", (Function.INFERENCE,), "share of successful requests captured")
    CAPTURE_EXCLUDE_INPUTS = EnvVar(
        "CAPTURE_EXCLUDE_INPUTS",
        (Function.INFERENCE, Function.PRE_TRAFFIC),
        "comma-separated inputs data capture never writes (the hook then cannot replay captured requests)",
    )
    FUNCTION_VERSION = EnvVar(
        "AWS_LAMBDA_FUNCTION_VERSION", (Function.INFERENCE,), "set by the Lambda runtime: the version serving"
    )
    FUNCTION_MEMORY_SIZE = EnvVar(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", (Function.INFERENCE,), "set by the Lambda runtime: MB, hence the vCPU share"
    )
    NEW_VERSION_ARN = EnvVar("NEW_VERSION_ARN", _HOOKS, "the version the deployment shifts to", required=True)
    ALIAS_NAME = EnvVar("ALIAS_NAME", _HOOKS, "the alias CodeDeploy shifts (default live)")
    ACCEPTANCE_CRITERIA = EnvVar(
        "ACCEPTANCE_CRITERIA", (Function.PRE_TRAFFIC,), "the bundle's acceptance criteria, JSON"
    )
    ACCEPTANCE_URI = EnvVar("ACCEPTANCE_URI", (Function.PRE_TRAFFIC,), "s3:// URI of the acceptance set (when any)")
    ACCEPTANCE_SHA256 = EnvVar("ACCEPTANCE_SHA256", (Function.PRE_TRAFFIC,), "the acceptance set's sha256")
    MODELS = EnvVar(
        "MODELS",
        (Function.MONITOR,),
        "JSON list of {name, baseline_uri, baseline_sha256, function_name?} to monitor",
        required=True,
    )
    CAPTURE_BUCKET = EnvVar(
        "CAPTURE_BUCKET",
        (Function.MONITOR, Function.PRE_TRAFFIC),
        "the bucket Firehose writes capture to (the hook replays from it; without it, capture is off)",
        required=True,
        optional_for=(Function.PRE_TRAFFIC,),
    )
    CAPTURE_PREFIX = EnvVar("CAPTURE_PREFIX", (Function.MONITOR,), "the capture records' prefix (default capture/)")
    WINDOW_MINUTES = EnvVar("WINDOW_MINUTES", (Function.MONITOR,), "captured data each run compares (default 60)")
    MIN_ROWS = EnvVar("MIN_ROWS", (Function.MONITOR,), "rows a version needs in the window for drift (default 100)")
    MAX_FEATURE_METRICS = EnvVar("MAX_FEATURE_METRICS", (Function.MONITOR,), "FeatureDrift series per run (default 50)")
    MIN_CANARY_ROWS = EnvVar("MIN_CANARY_ROWS", (Function.MONITOR,), "canary rows before PredictionDivergence (50)")
    PAIRED_MAX_REQUESTS = EnvVar(
        "PAIRED_MAX_REQUESTS", (Function.MONITOR,), "old-version invokes per model per run, paired analysis (100)"
    )
    PAIRED_MIN_REQUESTS = EnvVar(
        "PAIRED_MIN_REQUESTS", (Function.MONITOR,), "compared requests before CanaryDisagreement (20)"
    )
    PAIRED_TOLERANCE = EnvVar(
        "PAIRED_TOLERANCE", (Function.MONITOR,), "numeric outputs agree within it, relative and absolute (0.01)"
    )


ENV_VARS: tuple[EnvVar, ...] = (
    Env.MODEL_NAME,
    Env.MODEL_URI,
    Env.MODEL_SHA256,
    Env.MAX_BATCH_ROWS,
    Env.MODEL_CACHE_DIR,
    Env.ORT_INTRA_OP_THREADS,
    Env.METRICS_NAMESPACE,
    Env.POWERTOOLS_TRACE_DISABLED,
    Env.CAPTURE_STREAM,
    Env.CAPTURE_SAMPLE_RATE,
    Env.CAPTURE_EXCLUDE_INPUTS,
    Env.FUNCTION_VERSION,
    Env.FUNCTION_MEMORY_SIZE,
    Env.NEW_VERSION_ARN,
    Env.ALIAS_NAME,
    Env.ACCEPTANCE_CRITERIA,
    Env.ACCEPTANCE_URI,
    Env.ACCEPTANCE_SHA256,
    Env.MODELS,
    Env.CAPTURE_BUCKET,
    Env.CAPTURE_PREFIX,
    Env.WINDOW_MINUTES,
    Env.MIN_ROWS,
    Env.MAX_FEATURE_METRICS,
    Env.MIN_CANARY_ROWS,
    Env.PAIRED_MAX_REQUESTS,
    Env.PAIRED_MIN_REQUESTS,
    Env.PAIRED_TOLERANCE,
)


def read_by(function: Function) -> tuple[EnvVar, ...]:
    """The variables ``function`` reads."""
    return tuple(v for v in ENV_VARS if function in v.readers)
