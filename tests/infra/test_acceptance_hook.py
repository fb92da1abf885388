"""The placeholder pre-traffic hook always reports to CodeDeploy, even when it fails itself."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from functions.acceptance import hook

EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "exec-42"}
VERSION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:iris-inference:7"


@pytest.fixture
def codedeploy() -> Any:
    return boto3.client("codedeploy", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def expect_report(stubber: Stubber, status: str) -> None:
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "exec-42"},
        {"deploymentId": "d-ABCDEF123", "lifecycleEventHookExecutionId": "exec-42", "status": status},
    )


def test_reports_succeeded_for_the_new_version(monkeypatch: pytest.MonkeyPatch, codedeploy: Any) -> None:
    monkeypatch.setenv("NEW_VERSION_ARN", VERSION_ARN)
    with Stubber(codedeploy) as stubber:
        expect_report(stubber, "Succeeded")
        assert hook.handler(EVENT, None, client=codedeploy) == {"status": "Succeeded"}
        stubber.assert_no_pending_responses()


def test_reports_even_when_its_own_check_fails(monkeypatch: pytest.MonkeyPatch, codedeploy: Any) -> None:
    monkeypatch.delenv("NEW_VERSION_ARN", raising=False)  # misconfigured: the check itself raises
    with Stubber(codedeploy) as stubber:
        expect_report(stubber, "Succeeded")
        assert hook.handler(EVENT, None, client=codedeploy) == {"status": "Succeeded"}
        stubber.assert_no_pending_responses()


def test_an_event_without_deployment_ids_is_logged_not_reported(
    monkeypatch: pytest.MonkeyPatch, codedeploy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NEW_VERSION_ARN", VERSION_ARN)
    with Stubber(codedeploy):  # any call would fail: no response is queued
        assert hook.handler({"hello": "world"}, None, client=codedeploy) == {"status": "Succeeded"}
    assert "not a CodeDeploy lifecycle event" in caplog.text
