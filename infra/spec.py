"""The deployment spec: which models to deploy and, per environment, how (rollout, alarms, sizing, API).

Pure Python (pydantic, no aws_cdk): ``cdk synth`` and the local rehearsal read the same spec, and the
rollout policy and alarm definitions are plain data both of them interpret. Read it with ``load_spec()``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .bundle import NAME_PATTERN, BundleError, ModelBundle, artifact_key

ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = ROOT / "cdk.json"
CONTEXT_KEY = "modelrail"
ALIAS_NAME = "live"
METRICS_NAMESPACE = "modelrail"
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


class SpecError(ValueError):
    """An invalid deployment spec; the message names the field at fault and what is allowed."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- rollout -------------------------------------------------------------------------------------------------


class RolloutPolicy(_Spec):
    """How CodeDeploy shifts the alias ``live`` from the old version to the new one.

    ``all_at_once``: 100% at once. ``canary``: ``percentage`` for ``interval_minutes``, then the rest.
    ``linear``: ``percentage`` more every ``interval_minutes`` until 100%.
    """

    kind: Literal["all_at_once", "canary", "linear"]
    percentage: int | None = Field(default=None, ge=1, le=99, description="traffic share of the first (or each) step")
    interval_minutes: int | None = Field(default=None, ge=1, le=2880, description="minutes between traffic shifts")

    @model_validator(mode="after")
    def _steps_match_kind(self) -> RolloutPolicy:
        stepped = self.kind in ("canary", "linear")
        for field in ("percentage", "interval_minutes"):
            value = getattr(self, field)
            if stepped and value is None:
                raise ValueError(f"{field} is required for a {self.kind} rollout")
            if not stepped and value is not None:
                raise ValueError(f"{field} is not allowed for an all_at_once rollout (only for canary or linear)")
        return self

    def schedule(self) -> tuple[tuple[int, int], ...]:
        """(minute, percent of traffic on the new version) at each shift, ending at 100%."""
        if self.kind == "all_at_once" or self.percentage is None or self.interval_minutes is None:
            return ((0, 100),)
        if self.kind == "canary":
            return ((0, self.percentage), (self.interval_minutes, 100))
        steps = math.ceil(100 / self.percentage)
        return tuple((i * self.interval_minutes, min(100, (i + 1) * self.percentage)) for i in range(steps))

    @property
    def duration_minutes(self) -> int:
        return self.schedule()[-1][0]


# --- alarms --------------------------------------------------------------------------------------------------


class MetricSource(StrEnum):
    """Where a metric comes from; both are scoped to the version being deployed, never the whole function."""

    MODEL = "model"
    """The runtime's EMF metrics: namespace ``modelrail``, dimensions ModelName and ModelVersion=<new version>."""
    LAMBDA = "lambda"
    """Lambda's own: namespace ``AWS/Lambda``, FunctionName, Resource=<function>:live, ExecutedVersion=<new>."""


class MetricQuery(_Spec):
    id: str = Field(pattern=r"^[a-z][a-zA-Z0-9_]*$", description="metric math id")
    source: MetricSource
    metric_name: str
    statistic: str = Field(pattern=r"^(Sum|Average|Minimum|Maximum|SampleCount|p\d{1,2}(\.\d+)?)$")

    @property
    def namespace(self) -> str:
        return METRICS_NAMESPACE if self.source is MetricSource.MODEL else "AWS/Lambda"

    def dimensions(self, *, model_name: str, function_name: str, version: str) -> dict[str, str]:
        """The dimensions that pin this metric to one version (``version``: the Lambda version number)."""
        if self.source is MetricSource.MODEL:
            return {"ModelName": model_name, "ModelVersion": version}
        return {"FunctionName": function_name, "Resource": f"{function_name}:{ALIAS_NAME}", "ExecutedVersion": version}


ComparisonOperator = Literal[
    "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]
TreatMissingData = Literal["notBreaching", "breaching", "ignore", "missing"]
AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


class AlarmDefinition(_Spec):
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


class AlarmThresholds(_Spec):
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
    period_seconds: Literal[10, 30, 60, 120, 300] = 60
    evaluation_periods: int = Field(default=3, ge=1, le=60)
    datapoints_to_alarm: int = Field(default=2, ge=1, le=60)

    @model_validator(mode="after")
    def _m_of_n(self) -> AlarmThresholds:
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"datapoints_to_alarm ({self.datapoints_to_alarm}) must be <= evaluation_periods "
                f"({self.evaluation_periods})"
            )
        return self

    def definitions(self) -> tuple[AlarmDefinition, ...]:
        """Every alarm that watches a new version during its rollout (each one stops and rolls it back)."""
        common: dict[str, Any] = {
            "period_seconds": self.period_seconds,
            "evaluation_periods": self.evaluation_periods,
            "datapoints_to_alarm": self.datapoints_to_alarm,
            "treat_missing_data": "notBreaching",  # an idle canary is neither rolled back nor blocked
        }
        model, function = MetricSource.MODEL, MetricSource.LAMBDA

        def q(id_: str, source: MetricSource, name: str, statistic: str = "Sum") -> MetricQuery:
            return MetricQuery(id=id_, source=source, metric_name=name, statistic=statistic)

        return (
            AlarmDefinition(
                name="model-error-rate",
                description="Share of the new version's inference requests that failed in the model or found none.",
                metrics=(
                    q("requests", model, "Requests"),
                    q("modelErrors", model, "ModelErrors"),
                    q("unavailable", model, "Unavailable"),
                ),
                numerator=("modelErrors", "unavailable"),
                denominator=("requests",),
                threshold=self.model_error_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="non-finite-rate",
                description="Share of the new version's inference requests whose outputs held NaN or Inf.",
                metrics=(q("requests", model, "Requests"), q("nonFinite", model, "NonFiniteOutputs")),
                numerator=("nonFinite",),
                denominator=("requests",),
                threshold=self.non_finite_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="function-error-rate",
                description="Share of the new version's Lambda invocations that crashed or timed out.",
                metrics=(q("invocations", function, "Invocations"), q("errors", function, "Errors")),
                numerator=("errors",),
                denominator=("invocations",),
                threshold=self.function_error_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="throttle-rate",
                description="Share of the new version's invocations that Lambda throttled.",
                metrics=(q("invocations", function, "Invocations"), q("throttles", function, "Throttles")),
                numerator=("throttles",),
                denominator=("invocations", "throttles"),
                threshold=self.throttle_rate_percent,
                **common,
            ),
            AlarmDefinition(
                name="latency-p99",
                description="p99 of the new version's request latency against the budget (milliseconds).",
                metrics=(q("latency", model, "RequestLatency", "p99"),),
                threshold=self.p99_latency_ms,
                **common,
            ),
            AlarmDefinition(
                name="prediction-divergence",
                description=(
                    "Canary analysis: how far the new version's predictions are from the old version's on the same "
                    "traffic window (population stability index), published by the monitor from captured data."
                ),
                metrics=(q("divergence", model, "PredictionDivergence", "Maximum"),),
                threshold=self.prediction_divergence,
                **common,
            ),
        )


# --- environment ---------------------------------------------------------------------------------------------


class FunctionSettings(_Spec):
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    architecture: Literal["arm64", "x86_64"] = "arm64"
    ephemeral_storage_mb: int = Field(default=1024, ge=512, le=10240, description="/tmp, where the model is cached")
    timeout_seconds: int = Field(default=29, ge=1, le=29, description="API Gateway's integration timeout is 29 s")
    reserved_concurrency: int | None = Field(default=None, ge=1, description="cap on concurrent executions")
    provisioned_concurrency: int = Field(
        default=0, ge=0, description="on the alias live; CodeDeploy shifts it with the traffic weights"
    )
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 180, 365] = 30
    tracing: bool = Field(
        default=False, description="X-Ray on function and API; off by default: the SDK adds ~0.5 s to cold starts"
    )


class ApiSettings(_Spec):
    auth: Literal["iam", "api_key"] = Field(
        default="iam", description="what inference routes require; health stays open"
    )
    throttle_rate_limit: float = Field(default=100.0, gt=0, description="steady requests per second for the stage")
    throttle_burst_limit: int = Field(default=200, ge=1, description="burst requests for the stage")
    quota_per_day: int | None = Field(default=None, ge=1, description="api_key only: requests per key per day")

    @model_validator(mode="after")
    def _quota_needs_key(self) -> ApiSettings:
        if self.quota_per_day is not None and self.auth != "api_key":
            raise ValueError("quota_per_day is only allowed with auth 'api_key'")
        return self


class MonitoringSettings(_Spec):
    """Data capture and drift monitoring: what is sampled, how often drift is computed, when it alarms."""

    capture: bool = Field(default=True, description="sample requests and answers to S3 through Firehose")
    sample_rate: float = Field(default=0.05, gt=0, le=1, description="share of successful requests captured")
    schedule_minutes: int = Field(default=5, ge=1, le=60, description="how often the drift monitor runs")
    window_minutes: int = Field(default=60, ge=5, le=1440, description="captured data each run compares")
    feature_drift_threshold: float = Field(default=0.25, gt=0, description="alarm when max feature PSI exceeds it")
    prediction_drift_threshold: float = Field(default=0.25, gt=0, description="alarm when prediction PSI exceeds it")
    notify_emails: tuple[str, ...] = Field(default=(), description="subscribed to the drift topic")
    capture_retention_days: int = Field(default=90, ge=1, le=3650, description="captured data expires after this")


class EnvironmentSpec(_Spec):
    """Everything that differs between environments; the constructs see nothing else."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    rollout: RolloutPolicy
    alarms: AlarmThresholds = Field(default_factory=AlarmThresholds)
    function: FunctionSettings = Field(default_factory=FunctionSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @model_validator(mode="after")
    def _alarms_can_fire_within_a_step(self) -> EnvironmentSpec:
        # An alarm that needs more data than a canary step lasts cannot stop that step: the canary would
        # reach 100% before its alarm could fire.
        needed = self.alarms.datapoints_to_alarm * self.alarms.period_seconds
        if self.rollout.interval_minutes is not None and needed > self.rollout.interval_minutes * 60:
            raise ValueError(
                f"alarms need {needed} s of data to fire (alarms.datapoints_to_alarm x alarms.period_seconds) "
                f"but each {self.rollout.kind} step lasts {self.rollout.interval_minutes * 60} s "
                "(rollout.interval_minutes): lengthen the step or shorten the alarm window"
            )
        return self

    def alarm_definitions(self) -> tuple[AlarmDefinition, ...]:
        return self.alarms.definitions()


# --- hotfix --------------------------------------------------------------------------------------------------

HOTFIX_CONTEXT_KEY = "modelrail.hotfix"
HOTFIX_CONFIG_SUFFIX = "-hotfix"  # the custom deployment config's name ends so: `history` tells hotfixes by it


class Hotfix(_Spec):
    """One deploy that shifts traffic all at once (the acceptance gate still runs), asked for with a reason.

    A deploy-time flag, never part of cdk.json: ``cdk deploy modelrail-production -c modelrail.hotfix="why"``.
    The next deploy without the flag returns the deployment group to the environment's rollout policy.
    """

    reason: str = Field(min_length=8, max_length=200, pattern=r"^[^\x00-\x1f]+$")
    requested_by: str = "unknown"

    @field_validator("reason", mode="before")
    @classmethod
    def _a_reason(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "hotfix"):
            raise ValueError("give the reason for the hotfix, not a switch: -c modelrail.hotfix='NaN on long rows'")
        return value.strip() if isinstance(value, str) else value


def parse_hotfix(value: Any, *, requested_by: str = "unknown") -> Hotfix | None:
    """The hotfix asked for by ``-c modelrail.hotfix=<reason>``, None without the flag; errors name the flag."""
    if value is None or value is False or value == "":
        return None
    if not isinstance(value, str):
        raise SpecError(f"context {HOTFIX_CONTEXT_KEY}: expected the reason as text (got {value!r})")
    try:
        return Hotfix(reason=value, requested_by=requested_by)
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise SpecError(f"context {HOTFIX_CONTEXT_KEY}: {problems} (got {value!r})") from None


# --- models --------------------------------------------------------------------------------------------------


class ModelSource(_Spec):
    """A model to deploy: a bundle folder (uploaded at deploy time) or an existing ``s3://`` object."""

    bundle: str | None = Field(default=None, description="bundle path, relative to cdk.json")
    uri: str | None = Field(default=None, description="s3://bucket/key of an existing model.onnx")
    sha256: str | None = Field(default=None, description="with uri: the object's sha256, 64 lowercase hex")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="with uri: the model's name")
    max_batch_rows: int | None = Field(
        default=None, ge=1, le=1_000_000, description="with uri; bundles set it themselves"
    )

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a sha256: expected 64 lowercase hex characters")
        return value

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError(f"{value!r}: expected s3://<bucket>/<key>")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.bundle is None) == (self.uri is None):
            raise ValueError("give exactly one of 'bundle' (a folder) or 'uri' (s3://bucket/key with sha256)")
        if self.uri is not None and (self.sha256 is None or self.name is None):
            raise ValueError("a model given by 'uri' needs 'sha256' and 'name'")
        if self.bundle is not None and any(v is not None for v in (self.sha256, self.name, self.max_batch_rows)):
            raise ValueError("sha256, name and max_batch_rows come from the bundle itself; set them only with 'uri'")
        return self


@dataclass(frozen=True)
class DeployedModel:
    """A model resolved for deployment: what the function's environment will carry."""

    name: str
    sha256: str
    max_batch_rows: int
    bundle: ModelBundle | None = None
    uri: str | None = None
    acceptance_sha256: str | None = None  # of the bundle's acceptance.jsonl, when it has one
    baseline_sha256: str | None = None  # of the bundle's baseline.json, when it has one

    @classmethod
    def of_bundle(cls, bundle: ModelBundle) -> DeployedModel:
        """A bundle as deployed: its model, acceptance set and baseline pinned by their sha256."""

        def digest(path: Path | None) -> str | None:
            return hashlib.sha256(path.read_bytes()).hexdigest() if path else None

        return cls(
            bundle.name,
            bundle.sha256(),
            bundle.settings.max_batch_rows,
            bundle,
            acceptance_sha256=digest(bundle.acceptance_path),
            baseline_sha256=digest(bundle.baseline_path),
        )

    @property
    def artifact_key(self) -> str:
        """Object key in the stack's artifacts bucket (content-addressed) for a bundle."""
        return artifact_key(self.name, self.sha256)

    @property
    def acceptance_key(self) -> str | None:
        """Object key of the acceptance set (content-addressed), None when the bundle has none."""
        return f"acceptance/{self.name}/{self.acceptance_sha256}.jsonl" if self.acceptance_sha256 else None

    @property
    def baseline_key(self) -> str | None:
        """Object key of the drift baseline (content-addressed), None when the bundle has none."""
        return f"baselines/{self.name}/{self.baseline_sha256}.json" if self.baseline_sha256 else None

    def hook_environment(self, *, new_version_arn: str, acceptance_uri: str | None) -> dict[str, str]:
        """The pre-traffic hook's environment: which version to judge, against which set and criteria."""
        criteria = self.bundle.settings.acceptance.model_dump_json() if self.bundle else "{}"
        environment = {
            "MODEL_NAME": self.name,
            "NEW_VERSION_ARN": new_version_arn,
            "ALIAS_NAME": ALIAS_NAME,
            "ACCEPTANCE_CRITERIA": criteria,
        }
        if acceptance_uri is not None and self.acceptance_sha256 is not None:
            environment |= {"ACCEPTANCE_URI": acceptance_uri, "ACCEPTANCE_SHA256": self.acceptance_sha256}
        return environment

    def environment(
        self, model_uri: str, *, tracing: bool = False, capture_stream: str | None = None, sample_rate: float = 0.0
    ) -> dict[str, str]:
        """The inference function's environment: a new model is a new configuration, so a new version."""
        environment = {
            "MODEL_NAME": self.name,
            "MODEL_URI": model_uri,
            "MODEL_SHA256": self.sha256,
            "MAX_BATCH_ROWS": str(self.max_batch_rows),
            "METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        if not tracing:
            environment["POWERTOOLS_TRACE_DISABLED"] = "true"  # the handler then never imports the X-Ray SDK
        if capture_stream is not None:
            environment["CAPTURE_STREAM"] = capture_stream
            environment["CAPTURE_SAMPLE_RATE"] = f"{sample_rate:g}"
            excluded = self.bundle.settings.capture_exclude_inputs if self.bundle else ()
            if excluded:
                environment["CAPTURE_EXCLUDE_INPUTS"] = ",".join(excluded)
        return environment


class DeploymentSpec(_Spec):
    models: tuple[ModelSource, ...] = Field(min_length=1)
    environments: dict[str, EnvironmentSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_environments(cls, data: Any) -> Any:
        # Environments are keyed by name in cdk.json; the key is the name.
        if isinstance(data, dict) and isinstance(data.get("environments"), dict):
            envs = {}
            for key, value in data["environments"].items():
                envs[key] = {"name": key, **value} if isinstance(value, dict) and "name" not in value else value
            data = {**data, "environments": envs}
        return data

    @model_validator(mode="after")
    def _names_match(self) -> DeploymentSpec:
        for key, env in self.environments.items():
            if env.name != key:
                raise ValueError(f"environments.{key}.name is {env.name!r}; it must equal its key {key!r}")
        return self

    def environment(self, name: str) -> EnvironmentSpec:
        try:
            return self.environments[name]
        except KeyError:
            raise SpecError(
                f"no environment {name!r} in the spec; expected one of {sorted(self.environments)}"
            ) from None

    def resolve_models(self, base_dir: Path = ROOT) -> tuple[DeployedModel, ...]:
        """Load each bundle (or take the URI) and check the names are unique."""
        resolved: list[DeployedModel] = []
        for i, source in enumerate(self.models):
            where = f"context.{CONTEXT_KEY}.models[{i}]"
            if source.bundle is not None:
                try:
                    bundle = ModelBundle.load(base_dir / source.bundle)
                except BundleError as exc:
                    raise SpecError(f"{where}.bundle: {exc}") from exc
                resolved.append(DeployedModel.of_bundle(bundle))
            else:
                assert source.name is not None
                assert source.sha256 is not None
                assert source.uri is not None
                resolved.append(
                    DeployedModel(source.name, source.sha256, source.max_batch_rows or 1024, uri=source.uri)
                )
        names = [m.name for m in resolved]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"context.{CONTEXT_KEY}.models: model names must be unique; repeated: {duplicates}")
        return tuple(resolved)


def parse_spec(data: Any, source: str = "cdk.json") -> DeploymentSpec:
    """Validate the ``modelrail`` context value; errors name the field and what is allowed."""
    if isinstance(data, str):  # `cdk synth -c modelrail='{...}'` passes a string
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}: context.{CONTEXT_KEY} is not valid JSON ({exc})") from exc
    if data is None:
        raise SpecError(f"{source}: context.{CONTEXT_KEY} is missing (the models and environments to deploy)")
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid deployment spec:\n" + _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    lines = []
    for error in errors:
        if error["type"] == "too_short" and any(
            e is not error and e["loc"][: len(error["loc"])] == error["loc"] for e in errors
        ):
            continue  # a list emptied by its own invalid items: the items' errors say more
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        # Value errors name the input themselves; for the others, show what was given.
        shown = (
            "" if error["type"] in ("missing", "extra_forbidden", "value_error") else f" (got {error.get('input')!r})"
        )
        lines.append(f"  context.{CONTEXT_KEY}{loc}: {message}{shown}")
    return "\n".join(lines)


def load_spec(cdk_json: str | os.PathLike[str] = CDK_JSON, context: Mapping[str, Any] | None = None) -> DeploymentSpec:
    """The spec from ``cdk.json``'s context (or from ``context``, e.g. the CDK app's, when given)."""
    path = Path(cdk_json)
    if context is None:
        try:
            context = json.loads(path.read_text()).get("context", {})
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{path}: cannot read the CDK context ({exc})") from exc
    return parse_spec(context.get(CONTEXT_KEY), source=str(path))
