"""AcceptanceCriteria: what a model version must show before it receives user traffic.

Set in a bundle's ``modelrail.json`` under ``"acceptance"``; every field has a default, so a bundle with an
acceptance set and no settings is still gated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ReplaySettings(BaseModel):
    """``acceptance.replay``: recently captured live requests answered by the new version and compared, request by
    request, with the answers the live version gave (functions/acceptance/replay.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int = Field(200, ge=1, le=5000, description="newest captured requests replayed, at most")
    min_requests: int = Field(
        20, ge=1, le=5000, description="captured requests needed for a replay; fewer counts as no capture"
    )
    lookback_hours: int = Field(24, ge=1, le=24 * 90, description="how far back captured requests are taken")
    min_agreement: float = Field(
        0.98, ge=0.0, le=1.0, description="share of replayed rows whose labels (ZipMap argmax) match the live answer"
    )
    numeric_tolerance: float = Field(
        0.1, ge=0.0, description="a float output matches within this, absolute or relative (math.isclose)"
    )
    min_within_tolerance: float = Field(
        0.95, ge=0.0, le=1.0, description="share of replayed float output values within numeric_tolerance"
    )
    max_psi: float = Field(0.1, ge=0.0, description="PSI of the new predictions against the live ones, per output")
    when_unavailable: Literal["skip", "fail"] = Field(
        "skip", description="no capture to replay (first deploy, excluded inputs): skip the criterion, or fail it"
    )

    @model_validator(mode="after")
    def _enough_requests(self) -> ReplaySettings:
        if self.min_requests > self.requests:
            raise ValueError(
                f"min_requests ({self.min_requests}) is more than requests ({self.requests}): the replay could never "
                "have enough; lower min_requests or raise requests"
            )
        return self


class AcceptanceCriteria(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_pass_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="share of acceptance cases whose outputs must match their expectation"
    )
    atol: float = Field(1e-4, ge=0.0, description="absolute tolerance for floating-point outputs")
    rtol: float = Field(1e-3, ge=0.0, description="relative tolerance for floating-point outputs")
    max_error_responses: int = Field(0, ge=0, description="error answers (4xx/5xx) allowed on the acceptance set")
    latency_budget_ms: float = Field(
        250.0, gt=0, description="p99 of the function's own time per request (Server-Timing total) over the probe"
    )
    probe_requests: int = Field(60, ge=1, le=10_000, description="requests in the latency probe")
    breaking_change: bool = Field(
        False, description="declare that the input signature changes on purpose: skips the compatibility check"
    )
    replay: ReplaySettings = Field(
        default_factory=ReplaySettings, description="replay of captured live requests before any user traffic"
    )
