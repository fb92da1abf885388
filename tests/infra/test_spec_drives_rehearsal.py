"""One change to the production spec changes both what `cdk synth` deploys and how the rehearsal ends.

Production's rollout goes from canary to all at once: the template's deployment group loses its canary
config, and the rehearsal of the NaN-on-long-petals candidate, rolled back by the canary's alarm before,
now reaches all users and is not rolled back, as in AWS: an all-at-once deployment ends before any alarm period
does (CodeDeploy promotes it; the rehearsal calls that inconclusive, since no alarm judged the candidate).
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

from rich.console import Console

from modelrail.local.environment import LocalCloud
from modelrail.rehearsal.scenarios import ROOT as PROJECT
from modelrail.rehearsal.scenarios import Scenario, run_scenario
from modelrail.rehearsal.view import RehearsalView
from spec.models import parse_spec
from tests.infra.conftest import CDK_CONTEXT, Synthesized
from tests.infra.template_queries import resources

LONG_PETALS = [[7.7, 2.8, 6.7, 2.0], [5.1, 3.5, 1.4, 0.2], [6.4, 2.9, 4.3, 1.3]]  # one in three past 6 cm


def rehearse(context: dict[str, Any]) -> dict[str, Any]:
    environment = parse_spec(context["modelrail"]).environment("production")
    replay = [
        {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": row}]} for row in LONG_PETALS
    ]
    # The long petals arrive with the deployment: the warm-up's capture never held them, so replay cannot see the
    # fault and only the canary's alarms can.
    scenario = Scenario(
        "nan-tail",
        PROJECT / "models" / "iris",
        PROJECT / "models" / "iris-candidates" / "nan-tail",
        unseen_in_warm_up=True,
    )
    view = RehearsalView(Console(file=io.StringIO()))
    with LocalCloud() as cloud:
        return run_scenario(scenario, environment, cloud, view, time_scale=30, rate=60, replay=replay)


def test_one_spec_change_changes_the_template_and_the_rehearsal(main: Synthesized, synth: Any) -> None:
    all_at_once = copy.deepcopy(CDK_CONTEXT)
    all_at_once["modelrail"]["environments"]["production"]["rollout"] = {"kind": "all_at_once"}

    before, after = main["production"], synth("all-at-once", all_at_once)["production"]
    (group_before,) = resources(before, "AWS::CodeDeploy::DeploymentGroup").values()
    (group_after,) = resources(after, "AWS::CodeDeploy::DeploymentGroup").values()
    assert "Ref" in group_before["Properties"]["DeploymentConfigName"]  # the canary config
    assert len(resources(before, "AWS::CodeDeploy::DeploymentConfig")) == 1
    assert group_after["Properties"]["DeploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert resources(after, "AWS::CodeDeploy::DeploymentConfig") == {}

    canary = rehearse(copy.deepcopy(CDK_CONTEXT))
    everyone = rehearse(all_at_once)
    assert canary["outcome"] == "rolled_back", json.dumps(canary, indent=1)[:2000]
    assert canary["decided_by"] == {"layer": "canary alarm", "alarm": "non-finite-rate"}
    assert canary["replay"]["replay non-finite"].startswith("0 of ")  # the gate replayed, and saw nothing wrong
    assert canary["candidate_share"] < 0.2
    assert everyone["outcome"] == "inconclusive", json.dumps(everyone, indent=1)[:2000]
    assert everyone["policy"]["kind"] == "all_at_once"
