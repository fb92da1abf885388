"""A model's CodeDeploy deployments, read into what a person asks: when, from which version to which, how it
ended and what stopped it. CodeDeploy keeps the versions on the deployment's Lambda target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from spec.rollout import HOTFIX_CONFIG_SUFFIX

from .aws import Aws, explained
from .resources import ModelResources

IN_FLIGHT = ("Created", "Queued", "InProgress", "Baking", "Ready")
ROLLBACK_CREATORS = ("codeDeployRollback", "CloudFormationRollback")
ROLLBACK_DESCRIPTION = "modelrail rollback"  # how `modelrail rollback` marks the deployments it creates
HOOKS = {
    "BeforeAllowTraffic": "acceptance gate (pre-traffic hook)",
    "AfterAllowTraffic": "alias check (post-traffic hook)",
}
_NO_TARGET_YET = ("DeploymentNotStartedException", "DeploymentDoesNotExistException")
_APPSPEC_VERSION = {key: re.compile(rf'"?{key}"?\s*:\s*"?(\d+)"?') for key in ("CurrentVersion", "TargetVersion")}


@dataclass(frozen=True)
class LifecycleEvent:
    name: str
    status: str
    message: str | None = None


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str
    created: datetime
    config: str
    creator: str
    description: str = ""
    started: datetime | None = None
    completed: datetime | None = None
    from_version: str | None = None
    to_version: str | None = None
    target_weight: float | None = None  # share of traffic on to_version now (0..1), in flight
    events: tuple[LifecycleEvent, ...] = field(default_factory=tuple)
    error_code: str | None = None
    error_message: str | None = None
    rollback_message: str | None = None

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    @property
    def hotfix(self) -> bool:
        return self.config.endswith(HOTFIX_CONFIG_SUFFIX)

    @property
    def is_rollback(self) -> bool:
        return self.creator in ROLLBACK_CREATORS or self.description.startswith(ROLLBACK_DESCRIPTION)

    @property
    def step(self) -> str | None:
        """Where an in-flight deployment is: the lifecycle event running and the new version's traffic share."""
        if not self.in_flight:
            return None
        running = next((e.name for e in self.events if e.status == "InProgress"), None)
        if running is None:
            running = next((e.name for e in self.events if e.status == "Pending"), self.status)
        if self.target_weight is not None and self.to_version is not None:
            return f"{running}, {self.target_weight:.0%} of traffic on version {self.to_version}"
        return running

    def stopped_by(self, alarms: dict[str, str] | None = None) -> str | None:
        """What ended a deployment that did not succeed: an alarm (by its spec name), a hook, a person, or AWS."""
        if self.status not in ("Failed", "Stopped"):
            return None
        message = self.error_message or ""
        if self.error_code == "ALARM_ACTIVE" or "alarm" in message.lower():
            fired = [spec for spec, name in (alarms or {}).items() if name in message]
            if fired:
                return f"alarm {', '.join(fired)}"
            return f"alarm: {message}" if message else "an alarm"
        failed = [e for e in self.events if e.status == "Failed"]
        for event in failed:
            what = HOOKS.get(event.name, event.name)
            return f"{what}: {event.message}" if event.message else what
        if self.error_code == "MANUAL_STOP" or self.status == "Stopped":
            return f"stopped on request{': ' + message if message else ''}"
        return f"{self.error_code or 'error'}: {message}" if message else self.error_code


def read_deployments(
    aws: Aws, resources: ModelResources, *, statuses: tuple[str, ...] = (), limit: int | None = None
) -> list[Deployment]:
    """The deployment group's deployments, newest first (``statuses``: only those; ``limit``: the newest N)."""
    codedeploy = aws.client("codedeploy")
    with explained(f"listing the deployments of {resources.model}"):
        ids: list[str] = []
        request: dict[str, Any] = {
            "applicationName": resources.application,
            "deploymentGroupName": resources.deployment_group,
        }
        if statuses:
            request["includeOnlyStatuses"] = list(statuses)
        while True:
            page = codedeploy.list_deployments(**request)
            ids += page.get("deployments", [])
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        infos: list[dict[str, Any]] = []
        for start in range(0, len(ids), 25):  # BatchGetDeployments takes 25 at most
            infos += codedeploy.batch_get_deployments(deploymentIds=ids[start : start + 25])["deploymentsInfo"]
        infos.sort(key=lambda info: info["createTime"], reverse=True)
        return [_deployment(codedeploy, info) for info in infos[:limit]]


def _deployment(codedeploy: Any, info: dict[str, Any]) -> Deployment:
    error = info.get("errorInformation") or {}
    rollback = info.get("rollbackInfo") or {}
    target = _lambda_target(codedeploy, info["deploymentId"])
    function_info = target.get("lambdaFunctionInfo") or {}
    content = ((info.get("revision") or {}).get("appSpecContent") or {}).get("content", "")
    from_version = function_info.get("currentVersion") or _appspec_version(content, "CurrentVersion")
    to_version = function_info.get("targetVersion") or _appspec_version(content, "TargetVersion")
    events = tuple(
        LifecycleEvent(
            e["lifecycleEventName"], e.get("status", "Unknown"), (e.get("diagnostics") or {}).get("message") or None
        )
        for e in target.get("lifecycleEvents", [])
    )
    return Deployment(
        id=info["deploymentId"],
        status=info["status"],
        created=info["createTime"],
        config=info.get("deploymentConfigName", ""),
        creator=info.get("creator", ""),
        description=info.get("description") or "",
        started=info.get("startTime"),
        completed=info.get("completeTime"),
        from_version=from_version,
        to_version=to_version,
        target_weight=function_info.get("targetVersionWeight"),
        events=events,
        error_code=error.get("code"),
        error_message=error.get("message"),
        rollback_message=rollback.get("rollbackMessage"),
    )


def _lambda_target(codedeploy: Any, deployment_id: str) -> dict[str, Any]:
    """The deployment's Lambda target (versions, weight, lifecycle events); empty before it has started."""
    try:
        ids = codedeploy.list_deployment_targets(deploymentId=deployment_id).get("targetIds", [])
        if not ids:
            return {}
        targets = codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids[:1])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NO_TARGET_YET:
            return {}
        raise
    found = targets.get("deploymentTargets") or [{}]
    return dict(found[0].get("lambdaTarget") or {})


def _appspec_version(content: str, key: str) -> str | None:
    match = _APPSPEC_VERSION[key].search(content)
    return match.group(1) if match else None
