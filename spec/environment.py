"""Everything that differs between environments: rollout, alarms, function sizing, API, monitoring."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .alarms import AlarmDefinition, AlarmThresholds
from .base import SpecModel
from .rollout import RolloutPolicy


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
    schedule_minutes: int = Field(default=5, ge=1, le=60, description="how often the drift monitor runs")
    window_minutes: int = Field(default=60, ge=5, le=1440, description="captured data each run compares")
    feature_drift_threshold: float = Field(default=0.25, gt=0, description="alarm when max feature PSI exceeds it")
    prediction_drift_threshold: float = Field(default=0.25, gt=0, description="alarm when prediction PSI exceeds it")
    notify_emails: tuple[str, ...] = Field(default=(), description="subscribed to the drift topic")
    capture_retention_days: int = Field(default=90, ge=1, le=3650, description="captured data expires after this")


class EnvironmentSpec(SpecModel):
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
