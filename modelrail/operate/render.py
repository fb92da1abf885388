"""Text and JSON for the operate commands: what a person reads at 3 a.m., and what a script parses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from .deployments import Deployment
from .resources import ModelResources, StackResources
from .rollback import RollbackResult
from .status import ModelStatus


def to_json(value: Any) -> Any:
    """Dataclasses as dicts (with derived fields a script wants), datetimes as ISO 8601 UTC."""
    if isinstance(value, Deployment):
        return {
            **{f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)},
            "in_flight": value.in_flight,
            "hotfix": value.hotfix,
            "rollback": value.is_rollback,
            "step": value.step,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "error_rate"):
            data["error_rate"] = value.error_rate
        return data
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return _utc(value)
    return value


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(sha256: str | None) -> str:
    return sha256[:12] if sha256 else "?"


def describe_deployment(deployment: Deployment, alarms: dict[str, str]) -> str:
    moved = f"{deployment.from_version or '?'} -> {deployment.to_version or '?'}"
    parts = [f"{deployment.id} {deployment.status}: {moved}", f"config {deployment.config}"]
    if deployment.hotfix:
        parts.append("HOTFIX (all at once)")
    if deployment.is_rollback:
        parts.append(f"rollback by {deployment.creator}")
    if deployment.step:
        parts.append(f"step: {deployment.step}")
    stopped = deployment.stopped_by(alarms)
    if stopped:
        parts.append(f"stopped by {stopped}")
    return ", ".join(parts)


def status_text(stack: StackResources, statuses: list[ModelStatus]) -> str:
    lines = [f"stack {stack.stack} ({stack.region})"]
    if stack.hotfix:
        lines.append(f"  last deploy was a hotfix: {stack.hotfix}")
    for status in statuses:
        resources = stack.models[status.model]
        lines.append(f"\nmodel {status.model} (function {status.function})")
        lines.append(f"  alias {resources.alias}:")
        for weight in status.weights:
            lines.append(
                f"    version {weight.version:>4}  {weight.weight:>4.0%}  model sha256 {_short(weight.sha256)}"
            )
        deployment = status.deployment
        if deployment is None:
            lines.append("  deployment: none recorded")
        else:
            label = "in flight" if deployment.in_flight else "last"
            lines.append(f"  deployment ({label}): {describe_deployment(deployment, resources.alarms)}")
            lines.append(
                f"    created {_utc(deployment.created)}, started {_utc(deployment.started)}, "
                f"ended {_utc(deployment.completed)}"
            )
        lines.append("  alarms:")
        for alarm in status.alarms:
            lines.append(f"    {alarm.state:<17} {alarm.name:<22} {alarm.reason}")
        lines.append(f"  last {status.window_minutes} min by version:")
        lines.append("    version  invocations  requests  5xx  crashes  4xx  error rate")
        for row in status.traffic:
            rate = "-" if row.error_rate is None else f"{row.error_rate:.1%}"
            lines.append(
                f"    {row.version:>7}  {row.invocations:>11}  {row.requests:>8}  {row.failed:>3}  "
                f"{row.function_errors:>7}  {row.client_errors:>3}  {rate:>10}"
            )
    return "\n".join(lines)


def history_text(resources: ModelResources, deployments: list[Deployment]) -> str:
    lines = [f"model {resources.model}: deployments of {resources.application}/{resources.deployment_group}"]
    if not deployments:
        return "\n".join([*lines, "  none recorded"])
    lines.append(f"  {'created':<20}  {'deployment':<12}  {'versions':<10}  {'outcome':<10}  details")
    for deployment in deployments:
        moved = f"{deployment.from_version or '?'} -> {deployment.to_version or '?'}"
        details = [deployment.config]
        if deployment.hotfix:
            details.append("HOTFIX")
        if deployment.is_rollback:
            details.append(f"rollback ({deployment.creator})")
        stopped = deployment.stopped_by(resources.alarms)
        if stopped:
            details.append(f"stopped by {stopped}")
        if deployment.rollback_message:
            details.append(deployment.rollback_message)
        lines.append(
            f"  {_utc(deployment.created):<20}  {deployment.id:<12}  {moved:<10}  {deployment.status:<10}  "
            + "; ".join(details)
        )
    return "\n".join(lines)


def rollback_text(result: RollbackResult) -> str:
    return f"{result.message}\n  requested by {result.requested_by}"
