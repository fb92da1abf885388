"""One model's state in one screen: alias weights by version (with each version's model sha256), the current or
last deployment, every rollout alarm's state and reason, and each version's traffic and errors of late."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spec import catalog
from spec.alarms import MetricQuery

from .aws import Aws, explained
from .deployments import IN_FLIGHT, Deployment, read_deployments
from .resources import ModelResources

# What each version's row counts, summed over the window: the runtime's EMF metrics and Lambda's own.
_COUNTS = {
    "requests": catalog.REQUESTS,
    "modelErrors": catalog.MODEL_ERRORS,
    "nonFinite": catalog.NON_FINITE_OUTPUTS,
    "unavailable": catalog.UNAVAILABLE,
    "clientErrors": catalog.CLIENT_ERRORS,
    "invocations": catalog.INVOCATIONS,
    "functionErrors": catalog.ERRORS,
}


@dataclass(frozen=True)
class VersionWeight:
    version: str
    weight: float
    sha256: str | None


@dataclass(frozen=True)
class AlarmStatus:
    name: str  # the spec's name, e.g. non-finite-rate
    alarm_name: str
    state: str
    reason: str
    updated: datetime | None


@dataclass(frozen=True)
class VersionTraffic:
    version: str
    invocations: int
    requests: int
    failed: int  # answered 5xx: model errors, non-finite outputs, unavailable
    client_errors: int
    function_errors: int  # crashes and timeouts Lambda counted

    @property
    def error_rate(self) -> float | None:
        """Share of requests that failed (5xx, or a crash Lambda counted), None without requests."""
        served = max(self.requests, self.invocations)
        return (self.failed + self.function_errors) / served if served else None


@dataclass(frozen=True)
class ModelStatus:
    model: str
    function: str
    weights: tuple[VersionWeight, ...]
    deployment: Deployment | None
    alarms: tuple[AlarmStatus, ...]
    traffic: tuple[VersionTraffic, ...]
    window_minutes: int


def read_status(aws: Aws, resources: ModelResources, *, window_minutes: int = 15) -> ModelStatus:
    weights = read_weights(aws, resources)
    in_flight = read_deployments(aws, resources, statuses=IN_FLIGHT, limit=1)
    deployment = in_flight[0] if in_flight else next(iter(read_deployments(aws, resources, limit=1)), None)
    versions = [w.version for w in weights]
    if deployment is not None:
        versions += [v for v in (deployment.from_version, deployment.to_version) if v and v not in versions]
    return ModelStatus(
        model=resources.model,
        function=resources.function,
        weights=weights,
        deployment=deployment,
        alarms=read_alarms(aws, resources),
        traffic=read_traffic(aws, resources, versions, window_minutes=window_minutes),
        window_minutes=window_minutes,
    )


def read_weights(aws: Aws, resources: ModelResources) -> tuple[VersionWeight, ...]:
    """The alias's versions, biggest share first: its primary version plus any additional weights."""
    client = aws.client("lambda")
    with explained(f"reading alias {resources.alias} of {resources.function}"):
        alias = client.get_alias(FunctionName=resources.function, Name=resources.alias)
        extra = {
            v: float(w) for v, w in ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items()
        }
        shares = {alias["FunctionVersion"]: 1.0 - sum(extra.values()), **extra}
        return tuple(
            VersionWeight(version, share, model_sha256(aws, resources, version))
            for version, share in sorted(shares.items(), key=lambda item: (-item[1], item[0]))
        )


def model_sha256(aws: Aws, resources: ModelResources, version: str) -> str | None:
    """The sha256 of the model a version serves (its MODEL_SHA256 environment variable)."""
    configuration = aws.client("lambda").get_function_configuration(FunctionName=resources.function, Qualifier=version)
    return ((configuration.get("Environment") or {}).get("Variables") or {}).get(catalog.Env.MODEL_SHA256.name)


def read_alarms(aws: Aws, resources: ModelResources) -> tuple[AlarmStatus, ...]:
    if not resources.alarms:
        return ()
    with explained(f"reading the rollout alarms of {resources.model}"):
        found = {
            a["AlarmName"]: a
            for a in aws.client("cloudwatch").describe_alarms(AlarmNames=list(resources.alarms.values()))[
                "MetricAlarms"
            ]
        }
    statuses = []
    for name, alarm_name in resources.alarms.items():
        alarm = found.get(alarm_name)
        if alarm is None:
            statuses.append(AlarmStatus(name, alarm_name, "MISSING", "no such alarm in CloudWatch", None))
        else:
            statuses.append(
                AlarmStatus(
                    name,
                    alarm_name,
                    alarm["StateValue"],
                    alarm.get("StateReason", ""),
                    alarm.get("StateUpdatedTimestamp"),
                )
            )
    return tuple(statuses)


def read_traffic(
    aws: Aws, resources: ModelResources, versions: list[str], *, window_minutes: int, now: datetime | None = None
) -> tuple[VersionTraffic, ...]:
    """Each version's counts over the last ``window_minutes``, scoped as the rollout alarms scope them."""
    if not versions:
        return ()
    end = now or datetime.now(UTC)
    queries: list[dict[str, Any]] = []
    for index, version in enumerate(versions):
        for key, metric in _COUNTS.items():
            query = MetricQuery.of(key, metric, "Sum")
            dimensions = query.dimensions(model_name=resources.model, function_name=resources.function, version=version)
            queries.append(
                {
                    "Id": f"v{index}_{key}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": query.namespace,
                            "MetricName": query.metric_name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": True,
                }
            )
    totals: dict[str, float] = {}
    with explained(f"reading the metrics of {resources.model}"):
        request: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": end - timedelta(minutes=window_minutes),
            "EndTime": end,
        }
        while True:
            page = aws.client("cloudwatch").get_metric_data(**request)
            for result in page["MetricDataResults"]:
                totals[result["Id"]] = totals.get(result["Id"], 0.0) + sum(result.get("Values", []))
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]

    def count(index: int, key: str) -> int:
        return round(totals.get(f"v{index}_{key}", 0.0))

    return tuple(
        VersionTraffic(
            version=version,
            invocations=count(i, "invocations"),
            requests=count(i, "requests"),
            failed=count(i, "modelErrors") + count(i, "nonFinite") + count(i, "unavailable"),
            client_errors=count(i, "clientErrors"),
            function_errors=count(i, "functionErrors"),
        )
        for i, version in enumerate(versions)
    )
