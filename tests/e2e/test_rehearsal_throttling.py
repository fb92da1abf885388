"""The spec's `function.reserved_concurrency` reaches the rehearsal: a good retrain on production's spec, with the
function reserved one concurrent execution for the rehearsal's own users (4 clients at 40 requests/s, 200/s in the
warm-up, against Lambda's 10 x 1 invocations per second and one in flight: "Lambda scaling behavior",
scaling-behavior.html; "Understanding Lambda function scaling", lambda-concurrency.html). The users' requests take
that execution, and so the pre-traffic hook's own invocations of the new version are throttled too (the concurrency
is the function's, whoever invokes): the hook's invoker retries each throttled Invoke twice, then the request reads
as a 429, and the gate blocks the deployment, as it would on AWS. Capture is off, so there is no replay.
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


def test_a_reserved_concurrency_too_small_for_the_traffic_throttles_the_gate_and_blocks_a_good_retrain() -> None:
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
    assert report["outcome"] == "blocked", shown
    errors = next(c for c in report["acceptance"]["criteria"] if c["name"] == "error responses")
    assert not errors["passed"]
    assert "HTTP 429" in errors["detail"], errors
    assert "TooManyRequestsException" in errors["detail"], errors
    assert report["candidate_served"] == 0  # blocked before any user traffic reached it
    users = report["requests"]["1"]
    assert users["throttled"] > 0  # the users' own requests past the limit: API Gateway's 500s
    assert users["errors"] == 0  # throttled requests never ran: not the version's errors
    assert "throttled" in output.getvalue()  # the view's status lines show them
    assert throttle_warning(environment, 40) is not None  # and `rehearse` would have said so before starting
