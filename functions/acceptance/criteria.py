"""AcceptanceCriteria: what a model version must show before it receives user traffic.

Set in a bundle's ``modelrail.json`` under ``"acceptance"``; every field has a default, so a bundle with an
acceptance set and no settings is still gated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
