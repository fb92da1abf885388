"""The spec's load section: each environment's load-stage budgets, refused with the field named when wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spec.base import SpecError
from spec.models import parse_spec

ROOT = Path(__file__).resolve().parents[2]


def context(load: Any) -> dict[str, Any]:
    spec = json.loads((ROOT / "cdk.json").read_text())["context"]["modelrail"]
    spec["environments"]["staging"]["load"] = load
    return dict(spec)


def test_staging_has_a_load_stage_that_fits_its_own_api_throttle() -> None:
    spec = parse_spec(json.loads((ROOT / "cdk.json").read_text())["context"]["modelrail"])
    staging = spec.environment("staging")
    assert staging.load is not None
    assert staging.load.peak_rps <= staging.api.throttle_rate_limit
    assert spec.environment("production").load is None  # no load stage after production


@pytest.mark.parametrize(
    ("load", "message"),
    [
        (
            {"peak_rps": 0, "p99_ms": 500},
            "context.modelrail.environments.staging.load.peak_rps: Input should be greater",
        ),
        ({"peak_rps": 10}, "context.modelrail.environments.staging.load.p99_ms: Field required"),
        (
            {"peak_rps": 10, "p99_ms": 500, "max_error_rate_percent": 101},
            "context.modelrail.environments.staging.load.max_error_rate_percent: Input should be less than or equal",
        ),
        ({"peak_rps": 10, "p99_ms": 500, "p99": 1}, "context.modelrail.environments.staging.load.p99: unknown field"),
    ],
)
def test_a_wrong_load_budget_names_its_field(load: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        parse_spec(context(load))
