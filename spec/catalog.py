"""The catalog as the spec reads it: ``functions/catalog.py`` (each metric and environment variable, defined
with the code that publishes or reads it and shipped with each function), and how a metric is pinned to one
version of one model, as the rollout alarms, the operate commands and the rehearsal all pin it.
"""

from __future__ import annotations

from functions.catalog import (
    ARTIFACT_FETCH_RETRIES,
    CANARY_DISAGREEMENT,
    CAPTURE_DROPPED,
    CAPTURED_RECORDS,
    CAPTURED_ROWS,
    CLIENT_ERRORS,
    COLD_START,
    CONCURRENT_EXECUTIONS,
    DURATION,
    ENV_VARS,
    ERRORS,
    FEATURE_DRIFT,
    FEATURE_DRIFT_MAX,
    INVOCATIONS,
    LAMBDA_NAMESPACE,
    LAMBDA_VERSION_SCOPE,
    METRICS,
    MODEL_ERRORS,
    MODEL_LATENCY,
    MODEL_VERSION_SCOPE,
    NAMESPACE,
    NON_FINITE_OUTPUTS,
    PREDICTION_DIVERGENCE,
    PREDICTION_DRIFT,
    REQUEST_LATENCY,
    REQUESTS,
    ROWS,
    STANDARD_RESOLUTION_S,
    THROTTLES,
    UNAVAILABLE,
    Cadence,
    Dimension,
    Env,
    EnvVar,
    Function,
    Metric,
    metric,
    read_by,
)

from .rollout import ALIAS_NAME


def version_dimensions(metric: Metric, *, model_name: str, function_name: str, version: str) -> dict[str, str]:
    """The dimensions that scope ``metric`` to one version (``version``: the Lambda version number), in the
    catalog's order: the model's own metrics by ModelName and ModelVersion, Lambda's by FunctionName, the alias
    (Resource) and ExecutedVersion."""
    values = {
        Dimension.MODEL_NAME: model_name,
        Dimension.MODEL_VERSION: version,
        Dimension.FUNCTION_NAME: function_name,
        Dimension.RESOURCE: f"{function_name}:{ALIAS_NAME}",
        Dimension.EXECUTED_VERSION: version,
    }
    missing = [d for d in metric.dimensions if d not in values]
    if missing:
        raise ValueError(f"metric {metric.name} needs dimensions {missing} that do not name a version")
    return {d: values[d] for d in metric.dimensions}


__all__ = [
    "ARTIFACT_FETCH_RETRIES",
    "CANARY_DISAGREEMENT",
    "CAPTURED_RECORDS",
    "CAPTURED_ROWS",
    "CAPTURE_DROPPED",
    "CLIENT_ERRORS",
    "COLD_START",
    "CONCURRENT_EXECUTIONS",
    "DURATION",
    "ENV_VARS",
    "ERRORS",
    "FEATURE_DRIFT",
    "FEATURE_DRIFT_MAX",
    "INVOCATIONS",
    "LAMBDA_NAMESPACE",
    "LAMBDA_VERSION_SCOPE",
    "METRICS",
    "MODEL_ERRORS",
    "MODEL_LATENCY",
    "MODEL_VERSION_SCOPE",
    "NAMESPACE",
    "NON_FINITE_OUTPUTS",
    "PREDICTION_DIVERGENCE",
    "PREDICTION_DRIFT",
    "REQUESTS",
    "REQUEST_LATENCY",
    "ROWS",
    "STANDARD_RESOLUTION_S",
    "THROTTLES",
    "UNAVAILABLE",
    "Cadence",
    "Dimension",
    "Env",
    "EnvVar",
    "Function",
    "Metric",
    "metric",
    "read_by",
    "version_dimensions",
]
