"""Everything that differs between environments: rollout, alarms, function sizing, API, monitoring; and the check
that every rollout alarm can fire, and fire within one rollout step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from . import catalog
from .alarms import MONITOR_SCHEDULE_MINUTES, AlarmDefinition, AlarmThresholds, delivery_delay_s
from .base import SpecModel
from .capture import CAPTURE_PREFIX
from .rollout import RolloutPolicy

SNAP_START_MAX_EPHEMERAL_STORAGE_MB = 512


class FunctionSettings(SpecModel):
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
    snap_start: bool = Field(
        default=False,
        description="Lambda SnapStart on published versions: init (model fetched, verified, session) before the "
        "snapshot; restores skip it, for cache and restore charges (README: SnapStart)",
    )

    @model_validator(mode="before")
    @classmethod
    def _snap_start_storage(cls, data: object) -> object:
        # SnapStart's /tmp is at most 512 MB: turning it on without naming the storage takes that, rather than
        # refusing the 1024 MB default the user never wrote.
        if isinstance(data, dict) and data.get("snap_start") is True and "ephemeral_storage_mb" not in data:
            return {**data, "ephemeral_storage_mb": SNAP_START_MAX_EPHEMERAL_STORAGE_MB}
        return data

    @model_validator(mode="after")
    def _snap_start_supported(self) -> FunctionSettings:
        # What AWS refuses ("Improving startup performance with Lambda SnapStart", Supported features and
        # limitations, https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html): "SnapStart does not support
        # provisioned concurrency, Amazon Elastic File System (Amazon EFS), or ephemeral storage greater than
        # 512 MB". (No EFS here; the runtime, python3.12, is one SnapStart supports.)
        if not self.snap_start:
            return self
        if self.provisioned_concurrency:
            raise ValueError(
                f"snap_start cannot be combined with provisioned_concurrency ({self.provisioned_concurrency}): "
                "Lambda refuses both on one function; set provisioned_concurrency to 0 or snap_start to false"
            )
        if self.ephemeral_storage_mb > SNAP_START_MAX_EPHEMERAL_STORAGE_MB:
            raise ValueError(
                f"snap_start allows ephemeral_storage_mb up to {SNAP_START_MAX_EPHEMERAL_STORAGE_MB}, got "
                f"{self.ephemeral_storage_mb}: Lambda refuses SnapStart with more /tmp"
            )
        return self


class ApiSettings(SpecModel):
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


class MonitoringSettings(SpecModel):
    """Data capture and drift monitoring: what is sampled, how often drift is computed, when it alarms."""

    capture: bool = Field(default=True, description="sample requests and answers to S3 through Firehose")
    sample_rate: float = Field(default=0.05, gt=0, le=1, description="share of successful requests captured")
    schedule_minutes: int = Field(
        default=MONITOR_SCHEDULE_MINUTES,
        ge=1,
        le=60,
        description="how often the drift monitor runs, and so how often PredictionDivergence can change",
    )
    window_minutes: int = Field(default=60, ge=5, le=1440, description="captured data each run compares")
    feature_drift_threshold: float = Field(default=0.25, gt=0, description="alarm when max feature PSI exceeds it")
    prediction_drift_threshold: float = Field(default=0.25, gt=0, description="alarm when prediction PSI exceeds it")
    min_canary_rows: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="captured canary rows before the monitor publishes PredictionDivergence",
    )
    paired_max_requests: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="paired canary analysis: the old version's invokes per model per monitor run, at most",
    )
    paired_min_requests: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="paired canary analysis: requests compared before the monitor publishes CanaryDisagreement",
    )
    paired_tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="paired canary analysis: numeric outputs agree within it (rel. and abs.)"
    )
    notify_emails: tuple[str, ...] = Field(default=(), description="subscribed to the drift topic")
    capture_retention_days: int = Field(default=90, ge=1, le=3650, description="captured data expires after this")

    @property
    def timeout_seconds(self) -> int:
        """The monitor function's timeout: a run never outlives its schedule (so the next run's paired invokes never
        pile onto this one's), and never more than 5 minutes."""
        return 60 * min(5, self.schedule_minutes)

    def monitor_environment(self, *, models_json: str, capture_bucket: str) -> dict[str, str]:
        """The drift monitor function's environment (``models_json``: its MODELS, a JSON list of
        ``{name, baseline_uri, baseline_sha256}``): what the DriftMonitor construct and the rehearsal both give it."""
        return {
            catalog.Env.MODELS.name: models_json,
            catalog.Env.CAPTURE_BUCKET.name: capture_bucket,
            catalog.Env.CAPTURE_PREFIX.name: CAPTURE_PREFIX,
            catalog.Env.WINDOW_MINUTES.name: str(self.window_minutes),
            catalog.Env.MIN_CANARY_ROWS.name: str(self.min_canary_rows),
            catalog.Env.PAIRED_MAX_REQUESTS.name: str(self.paired_max_requests),
            catalog.Env.PAIRED_MIN_REQUESTS.name: str(self.paired_min_requests),
            catalog.Env.PAIRED_TOLERANCE.name: repr(self.paired_tolerance),
            catalog.Env.METRICS_NAMESPACE.name: catalog.NAMESPACE,
        }


class LoadBudget(SpecModel):
    """The load a version must hold before production (`modelrail load --env ENV`): a peak rate for a while, with
    p99 latency and errors within budget. Latency is measured by the client from each request's intended start."""

    peak_rps: float = Field(gt=0, le=100_000, description="requests per second the environment must hold")
    duration_seconds: int = Field(default=60, ge=1, le=3600, description="how long the peak is held")
    p99_ms: float = Field(gt=0, description="client-side p99 latency budget, milliseconds")
    max_error_rate_percent: float = Field(
        default=1.0, ge=0, le=100, description="share of requests answered 5xx, 429, timed out or never sent"
    )


@dataclass(frozen=True)
class CanaryAnalysisTraffic:
    """What the canary analysis needs to decide within the first step, at one row per request."""

    requests: int
    """Requests to the alias that leave ``min_canary_rows`` captured rows on the canary."""
    step_seconds: int
    seconds_available: int
    """The part of the step in which those requests must arrive for the alarm to fire before the step ends."""

    @property
    def per_second_over_the_step(self) -> float:
        return self.requests / self.step_seconds

    @property
    def per_second_needed(self) -> float | None:
        """The steady rate that gets the rows in time; None when the step leaves no time at all."""
        return self.requests / self.seconds_available if self.seconds_available > 0 else None


class EnvironmentSpec(SpecModel):
    """Everything that differs between environments; the constructs see nothing else.

    Every rollout alarm must be able to fire: its period may not be shorter than the interval at which its metric
    is published, and for canary and linear rollouts the time it needs to go to ALARM (its datapoints times its
    period, plus the delay before its metric reaches CloudWatch) must fit in one step, or the step ends (and the
    canary reaches everyone) before the alarm can stop it. An all_at_once rollout has no step to fit: CodeDeploy
    watches alarms only while a deployment runs, and an all-at-once deployment ends seconds after its post-traffic
    hook, so only the pre-traffic acceptance gate protects it; its alarms are checked for their metric only.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    rollout: RolloutPolicy
    # monitoring comes before alarms: the alarms' check reads its schedule.
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    alarms: AlarmThresholds = Field(default_factory=AlarmThresholds)
    function: FunctionSettings = Field(default_factory=FunctionSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    load: LoadBudget | None = Field(default=None, description="the load stage's budgets; None: no load stage")

    @field_validator("alarms")
    @classmethod
    def _alarms_can_fire(cls, alarms: AlarmThresholds, info: ValidationInfo) -> AlarmThresholds:
        monitoring = info.data.get("monitoring")
        if not isinstance(monitoring, MonitoringSettings):
            return alarms  # its own error is reported
        rollout = info.data.get("rollout")
        schedule = monitoring.schedule_minutes
        problems = []
        for definition in alarms.definitions(monitor_schedule_minutes=schedule):
            monitored = any(q.metric.cadence is catalog.Cadence.PER_MONITOR_RUN for q in definition.metrics)
            if monitored and not monitoring.capture:
                continue  # no capture, no monitor: nothing publishes its metric, whatever its window
            problems.extend(_faster_than_its_metric(definition, schedule))
            # Only an alarm that stops the rollout has a step to fit (prediction-divergence notifies).
            if isinstance(rollout, RolloutPolicy) and rollout.interval_minutes is not None and definition.stops_rollout:
                problems.extend(_longer_than_a_step(definition, schedule, rollout))
        if problems:
            raise ValueError("; ".join(problems))
        return alarms

    def alarm_definitions(self) -> tuple[AlarmDefinition, ...]:
        return self.alarms.definitions(monitor_schedule_minutes=self.monitoring.schedule_minutes)

    def canary_analysis_traffic(
        self, alarm: str = "prediction-divergence", rows: int | None = None
    ) -> CanaryAnalysisTraffic | None:
        """Traffic the monitor's ``alarm`` needs to fire within the first step, ``rows`` captured canary rows (by
        default ``monitoring.min_canary_rows``); None for all_at_once (no step)."""
        policy = self.rollout
        if policy.percentage is None or policy.interval_minutes is None:
            return None
        (definition,) = (d for d in self.alarm_definitions() if d.name == alarm)
        share = self.monitoring.sample_rate * policy.percentage / 100
        step = policy.interval_minutes * 60
        needed = self.monitoring.min_canary_rows if rows is None else rows
        return CanaryAnalysisTraffic(
            requests=math.ceil(round(needed / share, 6)),  # 50 / 0.005 is not exact
            step_seconds=step,
            seconds_available=step - definition.seconds_to_alarm(self.monitoring.schedule_minutes),
        )

    def paired_analysis_traffic(self) -> CanaryAnalysisTraffic | None:
        """Traffic the canary-disagreement alarm needs to stop the first step: ``monitoring.paired_min_requests``
        captured canary requests; None for all_at_once (no step)."""
        return self.canary_analysis_traffic("canary-disagreement", self.monitoring.paired_min_requests)


def _published_by(metric: catalog.Metric, schedule_minutes: int) -> str:
    if metric.cadence is catalog.Cadence.PER_MONITOR_RUN:
        return f"monitoring.schedule_minutes {schedule_minutes}"
    return "CloudWatch standard resolution"


def _faster_than_its_metric(definition: AlarmDefinition, schedule_minutes: int) -> list[str]:
    """An alarm whose period is shorter than its metric's interval sees most periods empty."""
    problems = []
    for metric in {q.metric.name: q.metric for q in definition.metrics}.values():
        interval = metric.interval_s(schedule_minutes)
        if definition.period_seconds >= interval:
            continue
        # Of N periods shorter than the interval, at most ceil(N * period / interval) can hold a datapoint.
        fillable = math.ceil(definition.evaluation_periods * definition.period_seconds / interval)
        consequence = (
            "it can never fire"
            if fillable < definition.datapoints_to_alarm
            else f"most of its periods hold no datapoint, so it can be in ALARM for one period per {interval} s at most"
        )
        problems.append(
            f"{definition.name} evaluates {definition.period_seconds} s periods but {metric.name} is published "
            f"every {interval} s ({_published_by(metric, schedule_minutes)}): {consequence}; "
            f"use a period of at least {interval} s"
        )
    return problems


def _longer_than_a_step(definition: AlarmDefinition, schedule_minutes: int, policy: RolloutPolicy) -> list[str]:
    """An alarm that needs longer than a step to go to ALARM cannot stop that step's traffic shift."""
    assert policy.interval_minutes is not None
    step = policy.interval_minutes * 60
    needed = definition.seconds_to_alarm(schedule_minutes)
    if needed <= step:
        return []
    slowest = max((q.metric for q in definition.metrics), key=lambda m: delivery_delay_s(m, schedule_minutes))
    delay = delivery_delay_s(slowest, schedule_minutes)
    if slowest.cadence is catalog.Cadence.PER_MONITOR_RUN:
        how = f"capture delivery {delay - schedule_minutes * 60} s + monitoring.schedule_minutes {schedule_minutes}"
    else:
        how = "CloudWatch delivery"
    return [
        f"{definition.name} needs up to {needed} s to go to ALARM ({definition.datapoints_to_alarm} x "
        f"{definition.period_seconds} s periods + {delay} s until {slowest.name} reaches CloudWatch: {how}) but "
        f"each {policy.kind} step lasts {step} s (rollout.interval_minutes {policy.interval_minutes}): it cannot "
        f"stop the step; make the step at least {math.ceil(needed / 60)} minutes or the alarm's window shorter"
    ]
