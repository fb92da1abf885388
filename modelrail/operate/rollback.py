"""Put the previous version back: stop the deployment in flight (CodeDeploy rolls it back), or, with none in
flight, a CodeDeploy deployment of the previous version (or, with ``force``, the alias set directly)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from .aws import Aws, OperateError, explained
from .deployments import IN_FLIGHT, ROLLBACK_DESCRIPTION, Deployment, read_deployments
from .resources import ModelResources
from .status import read_weights

ROLLBACK_CONFIG = "CodeDeployDefault.LambdaAllAtOnce"


@dataclass(frozen=True)
class RollbackResult:
    model: str
    action: Literal["stopped", "deployment", "alias"]
    from_version: str | None
    to_version: str | None
    deployment_id: str | None
    requested_by: str
    message: str


def caller(aws: Aws) -> str:
    with explained("asking STS who is calling"):
        return str(aws.client("sts").get_caller_identity()["Arn"])


def rollback(
    aws: Aws, resources: ModelResources, *, force: bool = False, to_version: str | None = None
) -> RollbackResult:
    who = caller(aws)
    in_flight = read_deployments(aws, resources, statuses=IN_FLIGHT, limit=1)
    if in_flight:
        return _stop(aws, resources, in_flight[0], who, force=force, to_version=to_version)

    weights = read_weights(aws, resources)
    target: str | None
    live = weights[0].version if len(weights) == 1 else None
    if live is None:
        primary = max(weights, key=lambda w: w.weight).version
        split = ", ".join(f"{w.version} ({w.weight:.0%})" for w in weights)
        if not force:
            raise OperateError(
                f"{resources.model}: alias {resources.alias} is split between versions {split} with no deployment "
                f"in flight, and CodeDeploy cannot start from a split alias; run again with --force to send all "
                f"traffic to version {to_version or primary} directly",
                exit_code=1,
            )
        live = ", ".join(w.version for w in weights)
        target = to_version or primary
    else:
        target = to_version or previous_version(read_deployments(aws, resources), live)
        if target is None:
            raise OperateError(
                f"{resources.model}: no previous version to roll back to: {resources.alias} serves version {live} "
                "and no successful deployment brought it there from another version (name one with --to VERSION)",
                exit_code=1,
            )
        if target == live:
            raise OperateError(f"{resources.model}: {resources.alias} already serves version {live}", exit_code=1)
    assert target is not None
    _check_published(aws, resources, target)

    description = f"{ROLLBACK_DESCRIPTION} of {resources.model}: {live} -> {target}, requested by {who}"
    if force:
        with explained(f"pointing {resources.alias} at version {target}"):
            aws.client("lambda").update_alias(
                FunctionName=resources.function,
                Name=resources.alias,
                FunctionVersion=target,
                RoutingConfig={"AdditionalVersionWeights": {}},
                Description=description[:256],
            )
        return RollbackResult(
            resources.model,
            "alias",
            live,
            target,
            None,
            who,
            f"{resources.model}: pointed {resources.alias} at version {target} directly (--force, no CodeDeploy "
            f"deployment, no hooks): it served {live}",
        )

    deployment_id = _deploy(aws, resources, live, target, description)
    return RollbackResult(
        resources.model,
        "deployment",
        live,
        target,
        deployment_id,
        who,
        f"{resources.model}: started CodeDeploy deployment {deployment_id}: {resources.alias} {live} -> {target}, "
        f"all at once ({ROLLBACK_CONFIG}); follow it with `modelrail status`",
    )


def previous_version(deployments: list[Deployment], live: str) -> str | None:
    """The version ``live`` served before its current version was rolled out (rollbacks are not rollouts)."""
    for deployment in deployments:  # newest first
        if (
            deployment.status == "Succeeded"
            and not deployment.is_rollback
            and deployment.to_version == live
            and deployment.from_version not in (None, live)
        ):
            return deployment.from_version
    return None


def _stop(
    aws: Aws, resources: ModelResources, deployment: Deployment, who: str, *, force: bool, to_version: str | None
) -> RollbackResult:
    with explained(f"stopping deployment {deployment.id}"):
        answer = aws.client("codedeploy").stop_deployment(deploymentId=deployment.id, autoRollbackEnabled=True)
    note = " (--force does not apply: CodeDeploy owns the alias while it deploys)" if force else ""
    if to_version is not None and to_version != deployment.from_version:
        note += f" (--to {to_version} does not apply: stopping returns {resources.alias} to where it was)"
    status = answer.get("status", "Pending")
    return RollbackResult(
        resources.model,
        "stopped",
        deployment.to_version,
        deployment.from_version,
        deployment.id,
        who,
        f"{resources.model}: stopped deployment {deployment.id} ({deployment.from_version} -> "
        f"{deployment.to_version}, {deployment.step or deployment.status}) with rollback: CodeDeploy moves "
        f"{resources.alias} back to version {deployment.from_version} (stop {status}: "
        f"{answer.get('statusMessage', '')}){note}",
    )


def _deploy(aws: Aws, resources: ModelResources, live: str, target: str, description: str) -> str:
    # No hooks: the stack's hooks judge the version its template published (NEW_VERSION_ARN), which is the one
    # being rolled back from. The target already passed its gate when it was deployed.
    appspec = {
        "version": 0.0,
        "Resources": [
            {
                resources.model: {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": resources.function,
                        "Alias": resources.alias,
                        "CurrentVersion": live,
                        "TargetVersion": target,
                    },
                }
            }
        ],
    }
    content = json.dumps(appspec)
    with explained(f"starting a rollback deployment of {resources.model}"):
        return str(
            aws.client("codedeploy").create_deployment(
                applicationName=resources.application,
                deploymentGroupName=resources.deployment_group,
                revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": content}},
                deploymentConfigName=ROLLBACK_CONFIG,
                description=description[:1000],
                # The group's alarms watch the version being rolled back from: in ALARM they would stop the
                # rollback itself. And a failed rollback must not "roll back" to the bad version.
                overrideAlarmConfiguration={"enabled": False, "alarms": []},
                autoRollbackConfiguration={"enabled": False},
            )["deploymentId"]
        )


def _check_published(aws: Aws, resources: ModelResources, version: str) -> None:
    client = aws.client("lambda")
    versions: list[str] = []
    with explained(f"listing the versions of {resources.function}"):
        request = {"FunctionName": resources.function}
        while True:
            page = client.list_versions_by_function(**request)
            versions += [v["Version"] for v in page["Versions"] if v["Version"] != "$LATEST"]
            if not page.get("NextMarker"):
                break
            request["Marker"] = page["NextMarker"]
    if version not in versions:
        raise OperateError(
            f"{resources.model}: version {version} of {resources.function} does not exist; published: "
            f"{', '.join(versions) or 'none'}",
            exit_code=1,
        )
