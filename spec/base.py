"""Common ground of the spec: every model is frozen and refuses unknown fields; SpecError names the field at fault."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecError(ValueError):
    """An invalid deployment spec; the message names the field at fault and what is allowed."""


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
