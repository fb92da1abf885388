"""The post-traffic hook on an alias still partly on the old version: every answer must come from the new one."""

from __future__ import annotations

import os
from typing import Any

import pytest

from functions.acceptance import posttraffic
from functions.acceptance.codedeploy import MIN_CALL_SECONDS
from tests.functional.conftest import IRIS
from tests.functional.test_acceptance import (
    FUNCTION_ARN,
    HOOK_EVENT,
    InProcessLambda,
    codedeploy_expecting,
    hook_environment,
)
from tests.utils import Context

pytestmark = pytest.mark.functional


class WeightedAlias(InProcessLambda):
    """An alias whose calls go, in turn, to the versions of ``routing`` (a weighted alias mid-shift)."""

    def __init__(self, versions: dict[str, Any], routing: list[str]) -> None:
        super().__init__(versions, routing[0])
        self.routing = routing
        self.function_names: list[str] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        self.function_names.append(params["FunctionName"])
        self.alias_version = self.routing[len(self.invoked) % len(self.routing)]
        return super().invoke(**params)


@pytest.mark.parametrize(
    ("routing", "status"),
    [(["2"] * 9 + ["1"], "Failed"), (["1"] + ["2"] * 9, "Failed"), (["2"] * 10, "Succeeded")],
    ids=["last-answer-old", "first-answer-old", "all-new"],
)
def test_post_traffic_fails_an_alias_that_still_sends_one_answer_in_ten_to_the_old_version(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, routing: list[str], status: str
) -> None:
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", {})
    alias = WeightedAlias(versions, routing)
    codedeploy, stubber = codedeploy_expecting(status, target_version="2")

    result = posttraffic.handler(HOOK_EVENT, Context(), clients={"lambda": alias, "codedeploy": codedeploy})

    assert result == {"status": status}
    assert alias.invoked == routing  # all ten probes asked, the old version's answer among them
    assert set(alias.function_names) == {f"{FUNCTION_ARN}:live"}  # the alias users reach, never a version
    stubber.assert_no_pending_responses()


def test_the_probes_stop_when_the_hooks_time_for_work_runs_out(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe starts only with at least MIN_CALL_SECONDS left, so the hook still reports before its timeout; what
    was asked until then is what it judges (fewer than PROBES answers: Failed)."""
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", {})
    alias = WeightedAlias(versions, ["2"])
    left = iter([5.0, MIN_CALL_SECONDS, MIN_CALL_SECONDS - 0.001])

    served = posttraffic.check_alias(os.environ, alias, lambda: next(left))

    assert served == ["2", "2"]
