"""The post-traffic hook on an alias still partly on the old version: every answer must come from the new one."""

from __future__ import annotations

from typing import Any

import pytest

from functions.acceptance import posttraffic
from tests.functional.conftest import IRIS
from tests.functional.test_acceptance import HOOK_EVENT, InProcessLambda, codedeploy_expecting, hook_environment
from tests.utils import Context

pytestmark = pytest.mark.functional


class WeightedAlias(InProcessLambda):
    """An alias whose calls go, in turn, to the versions of ``routing`` (a weighted alias mid-shift)."""

    def __init__(self, versions: dict[str, Any], routing: list[str]) -> None:
        super().__init__(versions, routing[0])
        self.routing = routing

    def invoke(self, **params: Any) -> dict[str, Any]:
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
    stubber.assert_no_pending_responses()
