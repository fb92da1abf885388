"""The spec's `function.reserved_concurrency` reaches the rehearsal: a good retrain, promoted on production's spec,
is rolled back by the throttle-rate alarm when the function is reserved one concurrent execution for the rehearsal's
own users (4 clients at 40 requests/s, 200/s in the warm-up, against Lambda's 10 x 1 invocations per second and one
in flight: "Lambda scaling behavior", scaling-behavior.html; "Understanding Lambda function scaling",
lambda-concurrency.html). Capture is off, so the scenario is the gate and the canary alone.
"""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from modelrail.local.environment import LocalCloud
from modelrail.rehearsal.scenarios import ROOT, Scenario, run_scenario, throttle_warning
from modelrail.rehearsal.view import RehearsalView
from spec.models import load_spec

pytestmark = pytest.mark.e2e


def test_a_reserved_concurrency_too_small_for_the_traffic_rolls_a_good_retrain_back_by_throttles() -> None:
    production = load_spec().environment("production")
    environment = production.model_copy(
        update={
            "function": production.function.model_copy(update={"reserved_concurrency": 1}),
            "monitoring": production.monitoring.model_copy(update={"capture": False}),
        }
    )
    scenario = Scenario("good retrain, reserved 1", ROOT / "models" / "iris", ROOT / "models/iris-candidates/retrained")
    output = io.StringIO()

    with LocalCloud() as cloud:
        report = run_scenario(scenario, environment, cloud, RehearsalView(Console(file=output)), time_scale=60, rate=40)

    shown = json.dumps(report, indent=1)[:3000]
    assert report["outcome"] == "rolled_back", shown
    assert report["decided_by"] == {"layer": "canary alarm", "alarm": "throttle-rate"}, shown
    assert [a["name"] for a in report["alarms"] if a["fired_at_s"] is not None] == ["throttle-rate"], shown
    candidate = report["requests"]["2"]
    assert candidate["throttled"] > 0
    assert candidate["errors"] == 0  # throttled requests never ran: not the version's errors
    assert report["requests"]["1"]["throttled"] > 0  # the limit is the function's, every version's traffic
    assert "throttled" in output.getvalue()  # the view's status lines show them
    assert throttle_warning(environment, 40) is not None  # and `rehearse` would have said so before starting
