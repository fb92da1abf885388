"""How a new version reaches traffic: the alias CodeDeploy shifts, the rollout policy, and the hotfix flag."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .base import SpecError, SpecModel

ALIAS_NAME = "live"


class RolloutPolicy(SpecModel):
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


HOTFIX_CONTEXT_KEY = "modelrail.hotfix"
HOTFIX_CONFIG_SUFFIX = "-hotfix"  # the custom deployment config's name ends so: `history` tells hotfixes by it


class Hotfix(SpecModel):
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
