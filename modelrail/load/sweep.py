"""Memory sizing, as AWS Lambda Power Tuning does it: the same load against the function at several memory sizes,
each a new published version (the alias ``live`` is never touched), and each size's p99 and cost per million
requests; the cheapest size whose p99 is within budget wins.

The new versions are invoked directly (API Gateway routes only to ``live``) with the REST proxy event API Gateway
would send, and with the log tail, whose REPORT line gives Lambda's own billed duration for each request. The
function's ``$LATEST`` must hold the live version's code and configuration (no deployment half done); its memory
is put back afterwards, and the versions the sweep published are deleted unless kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelrail.operate.aws import Aws, OperateError, explained
from modelrail.operate.resources import ModelResources

from .generator import LoadResult
from .targets import LambdaVersionTarget, Target

# On-demand prices, US East (N. Virginia), first tier (https://aws.amazon.com/lambda/pricing/): requests
# $0.20 per million; duration $0.0000166667 per GB-second on x86_64 and $0.0000133334 on arm64, billed per 1 ms.
# Other Regions and tiers differ: the figures compare sizes with each other, they are not an invoice.
PRICE_PER_MILLION_REQUESTS = 0.20
PRICE_PER_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICING_SOURCE = "https://aws.amazon.com/lambda/pricing/ (us-east-1, first tier)"


def cost_per_million(memory_mb: int, billed_ms: float, architecture: str) -> float:
    """USD per million requests at ``billed_ms`` mean billed duration: the request charge plus GB-seconds."""
    gb_seconds = memory_mb / 1024 * billed_ms / 1000
    return PRICE_PER_MILLION_REQUESTS + 1_000_000 * gb_seconds * PRICE_PER_GB_SECOND[architecture]


@dataclass(frozen=True)
class SweepPoint:
    memory_mb: int
    version: str
    p99_ms: float | None
    function_p99_ms: float | None
    billed_mean_ms: float | None
    error_rate: float
    cost_per_million_usd: float | None
    within_budget: bool
    published: bool  # False: the live version itself (already at this size), used as it is

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_mb": self.memory_mb,
            "version": self.version,
            "p99_ms": self.p99_ms,
            "function_p99_ms": self.function_p99_ms,
            "billed_mean_ms": self.billed_mean_ms,
            "error_rate": self.error_rate,
            "cost_per_million_usd": self.cost_per_million_usd,
            "within_budget": self.within_budget,
        }


@dataclass(frozen=True)
class SweepResult:
    function: str
    live_version: str
    architecture: str
    points: tuple[SweepPoint, ...]
    cheapest: SweepPoint | None
    deleted_versions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "live_version": self.live_version,
            "alias_untouched": True,
            "architecture": self.architecture,
            "pricing": PRICING_SOURCE,
            "points": [p.to_dict() for p in self.points],
            "cheapest_within_budget": None if self.cheapest is None else self.cheapest.memory_mb,
            "deleted_versions": list(self.deleted_versions),
        }

    def text(self) -> str:
        lines = [
            f"memory sweep of {self.function} (alias live stays on version {self.live_version}; prices: "
            f"{PRICING_SOURCE})",
            "  memory  version   p99 ms  function p99  billed mean  errors   $/1M requests",
        ]
        for p in self.points:

            def show(value: float | None, fmt: str) -> str:
                return "-" if value is None else format(value, fmt)

            lines.append(
                f"  {p.memory_mb:>6}  {p.version:>7}  {show(p.p99_ms, '7.1f'):>7}"
                f"  {show(p.function_p99_ms, '12.1f'):>12}  {show(p.billed_mean_ms, '11.1f'):>11}"
                f"  {100 * p.error_rate:5.1f}%  {show(p.cost_per_million_usd, '14.4f'):>14}"
                + ("" if p.within_budget else "   over budget")
            )
        if self.cheapest is None:
            lines.append("  no size is within the p99 and error budgets")
        else:
            lines.append(
                f"  cheapest within budget: {self.cheapest.memory_mb} MB "
                f"(${self.cheapest.cost_per_million_usd:.4f} per million requests)"
            )
        return "\n".join(lines)


def _wait_updated(client: Any, function: str, *, poll_s: float = 1.0, timeout_s: float = 120.0) -> None:
    """Until the configuration update has been applied (LastUpdateStatus Successful): publishing before would
    publish the old configuration, or fail with ResourceConflictException."""
    deadline = time.monotonic() + timeout_s
    while True:
        config = client.get_function_configuration(FunctionName=function)
        status = config.get("LastUpdateStatus", "Successful")
        if status == "Successful":
            return
        if status == "Failed":
            raise OperateError(f"{function}: configuration update failed: {config.get('LastUpdateStatusReason')}")
        if time.monotonic() > deadline:
            raise OperateError(f"{function}: configuration update still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def memory_sweep(
    aws: Aws,
    resources: ModelResources,
    sizes: Sequence[int],
    run: Callable[[Target], LoadResult],
    *,
    p99_budget_ms: float,
    max_error_rate: float,
    invoke_client: Any = None,
    keep_versions: bool = False,
    poll_s: float = 1.0,
) -> SweepResult:
    """``run`` sends the same load to each size's target and returns its result."""
    client = aws.client("lambda")
    invoker = invoke_client or client
    function, alias = resources.function, resources.alias
    path = f"/v2/models/{resources.model}/infer"
    with explained(f"reading {function}'s alias {alias} and configuration"):
        live = client.get_alias(FunctionName=function, Name=alias)
        live_version = live["FunctionVersion"]
        if live.get("RoutingConfig", {}).get("AdditionalVersionWeights"):
            raise OperateError(
                f"{function}: alias {alias} is split between versions (a deployment in flight): sweep later"
            )
        live_config = client.get_function_configuration(FunctionName=function, Qualifier=live_version)
        latest = client.get_function_configuration(FunctionName=function)
    for key in ("CodeSha256", "Environment", "Layers", "Handler", "Runtime"):
        if latest.get(key) != live_config.get(key):
            raise OperateError(
                f"{function}: $LATEST's {key} differs from the live version {live_version}'s (a deployment not "
                "finished, or a change outside the stack): deploy first, then sweep"
            )
    architecture = (live_config.get("Architectures") or ["x86_64"])[0]
    original_memory = int(latest["MemorySize"])
    published: list[tuple[int, str]] = []
    points: list[SweepPoint] = []
    try:
        for memory in sizes:
            if memory == int(live_config["MemorySize"]):
                version, ours = live_version, False  # the live version is this size already: use it, never publish
            else:
                with explained(f"publishing {function} at {memory} MB"):
                    client.update_function_configuration(FunctionName=function, MemorySize=memory)
                    _wait_updated(client, function, poll_s=poll_s)
                    version = client.publish_version(
                        FunctionName=function, Description=f"modelrail load --memory-sweep: {memory} MB"
                    )["Version"]
                ours = version != live_version
                if ours:
                    published.append((memory, version))
            result = run(LambdaVersionTarget(invoker, function, version, path))
            points.append(_point(memory, version, result, architecture, p99_budget_ms, max_error_rate, ours))
    finally:
        with explained(f"putting {function}'s $LATEST back to {original_memory} MB"):
            if int(client.get_function_configuration(FunctionName=function)["MemorySize"]) != original_memory:
                client.update_function_configuration(FunctionName=function, MemorySize=original_memory)
                _wait_updated(client, function, poll_s=poll_s)
        deleted: list[str] = []
        if not keep_versions:
            for _memory, version in published:
                with explained(f"deleting the sweep's version {version} of {function}"):
                    client.delete_function(FunctionName=function, Qualifier=version)
                deleted.append(version)
    with explained(f"reading {function}'s alias {alias}"):
        after = client.get_alias(FunctionName=function, Name=alias)["FunctionVersion"]
    if after != live_version:  # someone deployed meanwhile; the sweep never updates the alias
        raise OperateError(f"{function}: alias {alias} moved from {live_version} to {after} during the sweep")
    within = [p for p in points if p.within_budget and p.cost_per_million_usd is not None]
    cheapest = min(within, key=lambda p: p.cost_per_million_usd or 0.0) if within else None
    return SweepResult(function, live_version, architecture, tuple(points), cheapest, tuple(deleted))


def _point(
    memory: int,
    version: str,
    result: LoadResult,
    architecture: str,
    p99_budget_ms: float,
    max_error_rate: float,
    published: bool,
) -> SweepPoint:
    p99 = result.latency.percentile(99)
    billed = result.billed.mean_ms
    if billed is None and result.function.count:
        billed = result.function.mean_ms  # no log tail: Server-Timing, which Lambda rounds up to the ms it bills
    cost = None if billed is None else round(cost_per_million(memory, billed, architecture), 6)
    within = p99 is not None and p99 <= p99_budget_ms and result.error_rate <= max_error_rate
    return SweepPoint(
        memory,
        version,
        None if p99 is None else round(p99, 3),
        None if not result.function.count else round(result.function.percentile(99) or 0.0, 3),
        None if billed is None else round(billed, 3),
        round(result.error_rate, 5),
        cost,
        within,
        published,
    )
