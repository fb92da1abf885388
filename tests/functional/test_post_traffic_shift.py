"""The post-traffic hook on an alias still partly on the old version: every answer must come from the new one."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from functions.acceptance import codedeploy as codedeploy_module
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
from tests.functional.test_hook_faults import (  # noqa: F401 (lambda_api: the fixture)
    LambdaApi,
    ShortContext,
    lambda_api,
    throttled_codedeploy,
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


class Dwindling(Context):
    """A Lambda context whose time left drops by two seconds with each call the alias answers."""

    def __init__(self, alias: WeightedAlias, seconds: float) -> None:
        self.alias, self.seconds = alias, seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.seconds - 2 * len(self.alias.invoked)) * 1000)


def test_the_hook_judges_what_its_invocations_time_allowed(deploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 s, a fifth kept to report: probes go on while a call still fits before the reserve, eight of them; fewer
    than PROBES answers is no proof the alias is all on the new version, so Failed, and reported."""
    versions = {"1": deploy(IRIS, "iris", version="1"), "2": deploy(IRIS, "iris", version="2")}
    hook_environment(monkeypatch, "2", {})
    alias = WeightedAlias(versions, ["2"])
    codedeploy, stubber = codedeploy_expecting("Failed", target_version="2")

    result = posttraffic.handler(HOOK_EVENT, Dwindling(alias, 20), clients={"lambda": alias, "codedeploy": codedeploy})

    assert result == {"status": "Failed"}
    assert alias.invoked == ["2"] * 8
    stubber.assert_no_pending_responses()


class CountingCodeDeploy:
    def __init__(self, client: Any) -> None:
        self.client, self.reports = client, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_lifecycle_event_hook_execution_status(self, **params: Any) -> Any:
        self.reports += 1
        return self.client.put_lifecycle_event_hook_execution_status(**params)


def test_a_throttled_report_is_not_retried_past_the_hooks_own_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One second left: a retry could not end before Lambda stops the hook, so the report is tried once."""
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)  # the hook fails at once: only its report matters here
    codedeploy, _ = throttled_codedeploy(throttles=1)
    counting = CountingCodeDeploy(codedeploy)

    result = posttraffic.handler(HOOK_EVENT, ShortContext(1), clients={"codedeploy": counting, "lambda": object()})

    assert result == {"status": "Failed"}
    assert counting.reports == 1


def test_a_throttled_report_is_tried_twelve_times_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)
    monkeypatch.setattr(codedeploy_module.random, "uniform", lambda low, high: 0.0)  # no backoff pause here
    codedeploy, stubber = throttled_codedeploy(throttles=11)

    landed = codedeploy_module.report(codedeploy, "d-ABC123", "hook-1", "Failed", posttraffic.logger)

    assert landed
    stubber.assert_no_pending_responses()  # the twelfth attempt landed


def test_a_stale_hook_says_which_version_each_side_names() -> None:
    codedeploy, _ = codedeploy_expecting("Failed", target_version="3")
    message = "deployment d-ABC123 shifts the alias to version 3, but this hook's NEW_VERSION_ARN names version 2"
    with pytest.raises(codedeploy_module.StaleHook, match=message):
        codedeploy_module.check_target_version(codedeploy, "d-ABC123", f"{FUNCTION_ARN}:2", posttraffic.logger)


def test_a_report_throttled_twelve_times_gives_up_after_the_twelfth(monkeypatch: pytest.MonkeyPatch) -> None:
    jitter: list[tuple[float, float]] = []
    monkeypatch.setattr(codedeploy_module.random, "uniform", lambda low, high: jitter.append((low, high)) or 0.0)
    codedeploy, _ = throttled_codedeploy(throttles=13, then_accepts=False)
    counting = CountingCodeDeploy(codedeploy)

    landed = codedeploy_module.report(counting, "d-ABC123", "hook-1", "Failed", posttraffic.logger)

    assert not landed
    assert counting.reports == 12
    # Full jitter as the AWS SDKs back off: up to 0.25 s doubling with each attempt, never more than 4 s.
    assert jitter == [(0, min(4.0, 0.25 * 2**attempt)) for attempt in range(1, 13)]


def test_what_report_says_about_the_status_it_sent() -> None:
    """True when CodeDeploy has the status (an earlier attempt landed although its answer was lost, too); False, with
    no call, for an event that is not CodeDeploy's."""
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status",
        "LifecycleEventAlreadyCompletedException",
        "already completed",
        400,
    )
    stubber.activate()
    counting = CountingCodeDeploy(codedeploy)
    assert codedeploy_module.report(counting, "d-ABC123", "hook-1", "Failed", posttraffic.logger)
    assert counting.reports == 1
    for ids in (("d-ABC123", None), (None, "hook-1"), (None, None)):
        assert not codedeploy_module.report(counting, *ids, "Failed", posttraffic.logger)
    assert counting.reports == 1


def test_the_hook_probes_through_its_own_lambda_client_over_the_real_api(
    lambda_api: LambdaApi,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No client handed in: the hook makes its own, bound to its deadline, and reaches Lambda's REST API."""
    monkeypatch.setenv("NEW_VERSION_ARN", f"{FUNCTION_ARN}:2")
    monkeypatch.setenv("MODEL_NAME", "toy")
    lambda_api.alias_version = "2"
    codedeploy, stubber = codedeploy_expecting("Succeeded", target_version="2")

    result = posttraffic.handler(HOOK_EVENT, ShortContext(60), clients={"codedeploy": codedeploy})

    assert result == {"status": "Succeeded"}
    assert lambda_api.invoked == [("2", "/v2/models/toy/ready")] * posttraffic.PROBES
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("seconds_left", "landed"), [(7.0, True), (6.0, False)])
def test_a_report_is_retried_only_when_the_attempt_fits_after_its_pause(
    monkeypatch: pytest.MonkeyPatch, seconds_left: float, landed: bool
) -> None:
    """A retry waits its pause, then needs one attempt's time (5 s): 7 s left with a 2 s pause leaves exactly that;
    6 s does not, and the report gives up rather than be cut off mid-call."""
    monkeypatch.setattr(codedeploy_module.random, "uniform", lambda low, high: 2.0)
    monkeypatch.setattr(codedeploy_module.time, "sleep", lambda seconds: None)
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    stubber = Stubber(codedeploy)
    stubber.add_client_error("put_lifecycle_event_hook_execution_status", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_response("put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": "hook-1"})
    stubber.activate()
    counting = CountingCodeDeploy(codedeploy)
    deadline = codedeploy_module.Deadline(lambda: seconds_left * 1000)

    assert codedeploy_module.report(counting, "d-ABC123", "hook-1", "Failed", posttraffic.logger, deadline) is landed
    assert counting.reports == (2 if landed else 1)
