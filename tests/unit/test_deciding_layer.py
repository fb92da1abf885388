"""Which layer of rollout defence decided a rehearsed rollout, as the report and summary name it."""

from __future__ import annotations

from functions.acceptance.gate import CriterionResult, Verdict
from modelrail.rehearsal.verdict import deciding_layer, describe_layer


def verdict(*failing: str) -> Verdict:
    names = ("model serves", "acceptance set", "replay", "replay agreement", "replay non-finite")
    return Verdict("iris", "2", [CriterionResult(n, n not in failing, "", "") for n in names])


def test_a_gate_failing_only_on_replay_is_decided_by_replay() -> None:
    decided = deciding_layer("blocked", "pre-traffic hook failed: replay agreement", verdict("replay agreement"))
    assert decided == {"layer": "replay", "criteria": ["replay agreement"]}
    assert describe_layer(decided) == "replay (failed: replay agreement)"


def test_the_acceptance_set_decides_before_replay_when_both_fail() -> None:
    decided = deciding_layer("blocked", "", verdict("acceptance set", "replay agreement"))
    assert decided == {"layer": "acceptance set", "criteria": ["acceptance set"]}


def test_a_rollback_names_the_alarm_or_what_else_stopped_it() -> None:
    reason = "alarm canary-disagreement in ALARM: [66.7] against GreaterThanThreshold 10 (1 of 1)"
    assert deciding_layer("rolled_back", reason, verdict()) == {"layer": "canary alarm", "alarm": "canary-disagreement"}
    assert describe_layer(deciding_layer("rolled_back", reason, verdict())) == "canary alarm canary-disagreement"
    post = deciding_layer("rolled_back", "post-traffic hook failed: the alias answered with versions ['1']", verdict())
    assert post == {"layer": "post-traffic hook"}
    assert deciding_layer("rolled_back", "deployment stopped by the operator", verdict()) == {"layer": "operator"}


def test_a_promotion_was_stopped_by_no_layer() -> None:
    assert describe_layer(deciding_layer("promoted", "all hooks passed", verdict())) == "no layer stopped it"
