"""The rollout alarms as data: which metric each watches, how CloudWatch turns it into a state, with what thresholds,
and how long each needs, at worst, to go to ALARM once its metric turns bad (what the spec checks against a step).

``cdk synth`` turns each AlarmDefinition into an AWS::CloudWatch::Alarm; the rehearsal evaluates the same object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from . import catalog
from .base import SpecModel

# --- when a datapoint reaches CloudWatch, per cadence (how long an alarm waits before it can see it) -----------

MONITOR_SCHEDULE_MINUTES = 5
"""The default ``monitoring.schedule_minutes``: how often the drift monitor (and canary analysis) runs."""
CAPTURE_BUFFER_INTERVAL_S = 60
"""Firehose's buffering interval for data capture (infra/capture.py). Dynamic partitioning allows no less."""
CAPTURE_DELIVERY_S = CAPTURE_BUFFER_INTERVAL_S * 3 // 2
"""Captured record to S3 object, at worst: with dynamic partitioning Firehose buffers in several stages and a
batch may take 1.5 times the buffering interval end to end (Amazon Data Firehose Developer Guide, "Configure
buffering hints")."""
CLOUDWATCH_DELIVERY_S = catalog.STANDARD_RESOLUTION_S
"""Assumed: a per-request (EMF) or Lambda datapoint is in CloudWatch, for alarms, within one minute. Lambda sends
its metrics "in 1-minute intervals" (AWS Lambda Developer Guide, "Monitoring functions: types of metrics");
EMF metrics exist once CloudWatch Logs has processed the log event, which Lambda flushes as the invocation ends
(CloudWatch User Guide, "Setting alarms on metrics created with the embedded metric format")."""


def delivery_delay_s(metric: catalog.Metric, monitor_schedule_minutes: int) -> int:
    """Worst case from an event to its datapoint in CloudWatch: for the monitor's metrics, the capture's delivery
    to S3 plus one schedule until the next run reads it; for the rest, CloudWatch's own delivery."""
    if metric.cadence is catalog.Cadence.PER_MONITOR_RUN:
        return CAPTURE_DELIVERY_S + monitor_schedule_minutes * 60
    return CLOUDWATCH_DELIVERY_S


class MetricSource(StrEnum):
    """Where a metric comes from; both are scoped to the version being deployed, never the whole function."""

    MODEL = "model"
    """modelrail's own (the inference function's EMF, the monitor's): dimensions ModelName, ModelVersion=<new>."""
    LAMBDA = "lambda"
    """Lambda's own: namespace ``AWS/Lambda``, FunctionName, Resource=<function>:live, ExecutedVersion=<new>."""

    @property
    def namespace(self) -> str:
        return catalog.NAMESPACE if self is MetricSource.MODEL else catalog.LAMBDA_NAMESPACE


class MetricQuery(SpecModel):
    """One metric of an alarm, by its name in the catalog (functions/catalog.py)."""

    id: str = Field(pattern=r"^[a-z][a-zA-Z0-9_]*$", description="metric math id")
    source: MetricSource
    metric_name: str
    statistic: str = Field(pattern=r"^(Sum|Average|Minimum|Maximum|SampleCount|p\d{1,2}(\.\d+)?)$")

    @classmethod
    def of(cls, id_: str, metric: catalog.Metric, statistic: str = "Sum") -> MetricQuery:
        source = MetricSource.LAMBDA if metric.namespace == catalog.LAMBDA_NAMESPACE else MetricSource.MODEL
        return cls(id=id_, source=source, metric_name=metric.name, statistic=statistic)

    @model_validator(mode="after")
    def _in_the_catalog(self) -> MetricQuery:
        # A name nobody publishes would leave the alarm with missing data, which never breaches: no guard at all.
        if catalog.metric(self.namespace, self.metric_name) is None:
            known = sorted(m.name for m in catalog.METRICS if m.namespace == self.namespace)
            raise ValueError(
                f"metric {self.metric_name!r} is not in the catalog for namespace {self.namespace}; known: {known}"
            )
        return self

    @property
    def namespace(self) -> str:
        return self.source.namespace

    @property
    def metric(self) -> catalog.Metric:
        """The catalog's definition: unit, dimensions, publisher, cadence."""
        found = catalog.metric(self.namespace, self.metric_name)
        if found is None:
            raise ValueError(f"metric {self.metric_name!r} is no longer in the catalog for {self.namespace}")
        return found

    def dimensions(self, *, model_name: str, function_name: str, version: str) -> dict[str, str]:
        """The dimensions that pin this metric to one version (``version``: the Lambda version number)."""
        return catalog.version_dimensions(
            self.metric, model_name=model_name, function_name=function_name, version=version
        )


ComparisonOperator = Literal[
    "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]
TreatMissingData = Literal["notBreaching", "breaching", "ignore", "missing"]
AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


_SHOWN_UNITS = {"Percent": "%", "Milliseconds": " ms", "Seconds": " s", "Bytes": " bytes"}
_OPERATORS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


class AlarmDefinition(SpecModel):
    """One CloudWatch alarm as data: what ``cdk synth`` creates and what the rehearsal evaluates.

    The value per period is ``100 * sum(numerator) / sum(denominator)`` (a percentage; terms with no data count
    as 0, a denominator with no data in any of its terms leaves the period missing) or, without a denominator, the
    single metric's statistic. ``expression`` is the same rule as CloudWatch metric math.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str
    metrics: tuple[MetricQuery, ...] = Field(min_length=1)
    numerator: tuple[str, ...] = ()
    denominator: tuple[str, ...] = ()
    period_seconds: int
    threshold: float
    comparison_operator: ComparisonOperator = "GreaterThanThreshold"
    evaluation_periods: int = Field(ge=1)
    datapoints_to_alarm: int = Field(ge=1)
    treat_missing_data: TreatMissingData = "notBreaching"
    stops_rollout: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> AlarmDefinition:
        ids = {m.id for m in self.metrics}
        if bool(self.numerator) != bool(self.denominator):
            raise ValueError("numerator and denominator go together (a rate) or not at all")
        if not self.denominator and len(self.metrics) != 1:
            raise ValueError("an alarm without a rate watches exactly one metric")
        unknown = [i for i in (*self.numerator, *self.denominator) if i not in ids]
        if unknown:
            raise ValueError(f"numerator/denominator name unknown metric ids {unknown}; known: {sorted(ids)}")
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError("datapoints_to_alarm cannot exceed evaluation_periods")
        return self

    @property
    def is_rate(self) -> bool:
        return bool(self.denominator)

    @property
    def unit(self) -> str:
        """What the value and threshold are measured in, as written after a number: "%" for a rate, else the
        metric's catalog unit (" ms"), " PSI" for the drift statistics (unit None), "" for a count."""
        if self.is_rate:
            return "%"
        metric = self.metrics[0].metric
        return _SHOWN_UNITS.get(metric.unit, "") or (" PSI" if "PSI" in metric.description else "")

    def threshold_text(self) -> str:
        """The breaching rule with its unit, e.g. "> 1%" or "> 500 ms"."""
        return f"{_OPERATORS[self.comparison_operator]} {self.threshold:g}{self.unit}"

    @property
    def expression(self) -> str | None:
        """CloudWatch metric math for a rate, None for a single metric."""
        if not self.is_rate:
            return None
        # Every term is FILLed: a period where Lambda throttled every call has Throttles but no Invocations, and an
        # unfilled term would leave it missing (never breaching) exactly when the canary is throttled the most.
        numerator = " + ".join(f"FILL({i}, 0)" for i in self.numerator)
        denominator = " + ".join(f"FILL({i}, 0)" for i in self.denominator)
        return f"100 * ({numerator}) / ({denominator})"

    def value(self, statistics: Mapping[str, float | None]) -> float | None:
        """The alarm's value for one period from each metric id's statistic (None or absent: no data)."""
        if not self.is_rate:
            return statistics.get(self.metrics[0].id)
        if all(statistics.get(i) is None for i in self.denominator):
            return None
        denominator = sum(statistics.get(i) or 0.0 for i in self.denominator)
        if denominator == 0:
            return None
        return 100.0 * sum(statistics.get(i) or 0.0 for i in self.numerator) / denominator

    def breaches(self, value: float) -> bool:
        return {
            "GreaterThanThreshold": value > self.threshold,
            "GreaterThanOrEqualToThreshold": value >= self.threshold,
            "LessThanThreshold": value < self.threshold,
            "LessThanOrEqualToThreshold": value <= self.threshold,
        }[self.comparison_operator]

    def state(self, values: Sequence[float | None], current: AlarmState = "INSUFFICIENT_DATA") -> AlarmState:
        """CloudWatch's M-out-of-N rule over the latest ``evaluation_periods`` values (oldest first; None: no data).

        Missing datapoints count as good (notBreaching) or bad (breaching); with ``missing`` and ``ignore`` they
        are left out, and a window with no data at all is INSUFFICIENT_DATA (missing) or keeps ``current``
        (ignore). CloudWatch may also look back past the window for more datapoints; this rule does not.
        """
        window = list(values)[-self.evaluation_periods :]
        present = [v for v in window if v is not None]
        if not present:
            if self.treat_missing_data == "notBreaching":
                return "OK"
            if self.treat_missing_data == "breaching":
                return "ALARM" if window else "INSUFFICIENT_DATA"
            return current if self.treat_missing_data == "ignore" else "INSUFFICIENT_DATA"
        breaching = sum(1 for v in present if self.breaches(v))
        if self.treat_missing_data == "breaching":
            breaching += len(window) - len(present)
        return "ALARM" if breaching >= self.datapoints_to_alarm else "OK"

    def seconds_to_alarm(self, monitor_schedule_minutes: int) -> int:
        """Worst case from the metric turning bad to ALARM: ``datapoints_to_alarm`` breaching periods, plus the
        delay before the slowest metric's datapoint is in CloudWatch. (CloudWatch's default sliding window may
        see a breaching datapoint sooner; this is the bound a rollout step has to cover.)"""
        delay = max(delivery_delay_s(q.metric, monitor_schedule_minutes) for q in self.metrics)
        return self.datapoints_to_alarm * self.period_seconds + delay


class AlarmWindow(SpecModel):
    """Period and M-of-N of one alarm that does not follow the common window."""

    period_seconds: int = Field(ge=10, le=86_400)
    evaluation_periods: int = Field(default=1, ge=1, le=60)
    datapoints_to_alarm: int = Field(default=1, ge=1, le=60)

    @model_validator(mode="after")
    def _valid_for_cloudwatch(self) -> AlarmWindow:
        if self.period_seconds not in (10, 20, 30) and self.period_seconds % 60:
            raise ValueError(
                f"period_seconds must be 10, 20, 30 or a multiple of 60 (CloudWatch's periods), "
                f"got {self.period_seconds}"
            )
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"datapoints_to_alarm ({self.datapoints_to_alarm}) must be <= evaluation_periods "
                f"({self.evaluation_periods})"
            )
        return self


class AlarmThresholds(SpecModel):
    """What may go wrong on the new version before CodeDeploy rolls it back. Rates are percentages."""

    model_error_rate_percent: float = Field(default=1.0, ge=0, le=100, description="(ModelErrors+Unavailable)/Requests")
    non_finite_rate_percent: float = Field(default=0.0, ge=0, le=100, description="NonFiniteOutputs/Requests")
    function_error_rate_percent: float = Field(default=1.0, ge=0, le=100, description="Lambda Errors/Invocations")
    throttle_rate_percent: float = Field(default=1.0, ge=0, le=100, description="Throttles/(Invocations+Throttles)")
    p99_latency_ms: float = Field(default=1000.0, gt=0, description="budget for RequestLatency p99 (milliseconds)")
    prediction_divergence: float = Field(
        default=0.25,
        gt=0,
        description="canary analysis: PSI of the new version's predictions against the old one's, same traffic",
    )
    canary_disagreement_percent: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description=(
            "paired canary analysis: share of the new version's captured requests that the old version answers "
            "otherwise (labels, ZipMap argmax; a regressor's numbers beyond monitoring.paired_tolerance)"
        ),
    )
    period_seconds: Literal[10, 30, 60, 120, 300] = Field(
        default=60, description="the common window of the per-request and Lambda alarms"
    )
    evaluation_periods: int = Field(default=3, ge=1, le=60)
    datapoints_to_alarm: int = Field(default=2, ge=1, le=60)
    prediction_divergence_window: AlarmWindow | None = Field(
        default=None,
        description=(
            "the prediction-divergence alarm's own window; by default one period of the monitor's schedule, 1 of 1 "
            "(PredictionDivergence has one datapoint per monitor run, so the common window cannot fit it)"
        ),
    )
    canary_disagreement_window: AlarmWindow | None = Field(
        default=None,
        description="the canary-disagreement alarm's own window; by default one monitor schedule, 1 of 1 (as above)",
    )

    @model_validator(mode="after")
    def _m_of_n(self) -> AlarmThresholds:
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"datapoints_to_alarm ({self.datapoints_to_alarm}) must be <= evaluation_periods "
                f"({self.evaluation_periods})"
            )
        return self

    def definitions(self, *, monitor_schedule_minutes: int = MONITOR_SCHEDULE_MINUTES) -> tuple[AlarmDefinition, ...]:
        """Every alarm that watches a new version during its rollout (each one stops and rolls it back).

        The per-request and Lambda alarms share the common window; canary-disagreement and prediction-divergence
        have their own, by default one period of ``monitor_schedule_minutes`` (the drift monitor's schedule), 1 of 1.
        prediction-divergence (the two versions' prediction mixes) is a drift signal that notifies and never stops
        a rollout: a model that swaps labels keeps the mix and passes it, while canary-disagreement, comparing the
        answers to the same requests, does not.
        """
        divergence = self.prediction_divergence_window or AlarmWindow(period_seconds=monitor_schedule_minutes * 60)
        disagreement = self.canary_disagreement_window or AlarmWindow(period_seconds=monitor_schedule_minutes * 60)
        common: dict[str, Any] = {
            "period_seconds": self.period_seconds,
            "evaluation_periods": self.evaluation_periods,
            "datapoints_to_alarm": self.datapoints_to_alarm,
            "treat_missing_data": "notBreaching",  # an idle canary is neither rolled back nor blocked
        }
        q = MetricQuery.of
        return (
            AlarmDefinition(
                name="model-error-rate",
                description="Share of the new version's inference requests that failed in the model or found none.",
                metrics=(
                    q("requests", catalog.REQUESTS),
                    q("modelErrors", catalog.MODEL_ERRORS),
                    q("unavailable", catalog.UNAVAILABLE),
                ),
                numerator=("modelErrors", "unavailable"),
                denominator=("requests",),
                threshold=self.model_error_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="non-finite-rate",
                description="Share of the new version's inference requests whose outputs held NaN or Inf.",
                metrics=(q("requests", catalog.REQUESTS), q("nonFinite", catalog.NON_FINITE_OUTPUTS)),
                numerator=("nonFinite",),
                denominator=("requests",),
                threshold=self.non_finite_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="function-error-rate",
                description="Share of the new version's Lambda invocations that crashed or timed out.",
                metrics=(q("invocations", catalog.INVOCATIONS), q("errors", catalog.ERRORS)),
                numerator=("errors",),
                denominator=("invocations",),
                threshold=self.function_error_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="throttle-rate",
                description="Share of the new version's invocations that Lambda throttled.",
                metrics=(q("invocations", catalog.INVOCATIONS), q("throttles", catalog.THROTTLES)),
                numerator=("throttles",),
                denominator=("invocations", "throttles"),
                threshold=self.throttle_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="latency-p99",
                description="p99 of the new version's request latency against the budget (milliseconds).",
                metrics=(q("latency", catalog.REQUEST_LATENCY, "p99"),),
                threshold=self.p99_latency_ms,
                **common,
            ),
            AlarmDefinition(
                name="prediction-divergence",
                description=(
                    "Canary analysis: how far the new version's predictions are from the old version's on the same "
                    "traffic window (population stability index), published by the monitor from captured data."
                ),
                metrics=(q("divergence", catalog.PREDICTION_DIVERGENCE, "Maximum"),),
                threshold=self.prediction_divergence,
                period_seconds=divergence.period_seconds,
                evaluation_periods=divergence.evaluation_periods,
                datapoints_to_alarm=divergence.datapoints_to_alarm,
                treat_missing_data="notBreaching",  # no run yet, or too few canary rows: neither hold nor roll back
                stops_rollout=False,
            ),
            AlarmDefinition(
                name="canary-disagreement",
                description=(
                    "Paired canary analysis: share of the new version's captured requests that the old version, "
                    "asked the same, answers otherwise; published by the monitor while the deployment is in flight."
                ),
                metrics=(q("disagreement", catalog.CANARY_DISAGREEMENT, "Maximum"),),
                threshold=self.canary_disagreement_percent,
                period_seconds=disagreement.period_seconds,
                evaluation_periods=disagreement.evaluation_periods,
                datapoints_to_alarm=disagreement.datapoints_to_alarm,
                treat_missing_data="notBreaching",  # too few compared requests yet: neither hold nor roll back
            ),
        )
