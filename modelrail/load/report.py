"""The load report: achieved against target rate, client latency beside the function's own (Server-Timing), errors
by class, cold starts, each second of the run; budget checks against the spec's ``load`` section; text and PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec.environment import LoadBudget

from .generator import ENVIRONMENT_HEADER, ERROR_KINDS, LoadResult


@dataclass(frozen=True)
class BudgetCheck:
    name: str
    limit: str
    measured: str
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.name, "limit": self.limit, "measured": self.measured, "passed": self.passed}


# Below this share of the target rate, the run did not hold the load it was asked for.
RATE_TOLERANCE = 0.95


def check_budgets(result: LoadResult, budget: LoadBudget) -> list[BudgetCheck]:
    """Each budget of the spec's load section, met or missed; the rate is held to 95% of the profile's mean."""
    p99 = result.latency.percentile(99)
    checks = [
        BudgetCheck(
            "load.peak_rps",
            f">= {RATE_TOLERANCE:.0%} of {result.target_rps:g}/s",
            f"{result.achieved_rps:.1f}/s",
            result.achieved_rps >= RATE_TOLERANCE * result.target_rps,
        ),
        BudgetCheck(
            "load.p99_ms",
            f"<= {budget.p99_ms:g} ms",
            "no successful answer" if p99 is None else f"{p99:.1f} ms",
            p99 is not None and p99 <= budget.p99_ms,
        ),
        BudgetCheck(
            "load.max_error_rate_percent",
            f"<= {budget.max_error_rate_percent:g}%",
            f"{100 * result.error_rate:.2f}% ({result.failed} of {result.scheduled})",
            100 * result.error_rate <= budget.max_error_rate_percent,
        ),
    ]
    return checks


def _round(value: float | int | None, digits: int = 3) -> float | int | None:
    return None if value is None else round(value, digits) if isinstance(value, float) else value


def _summary(histogram: Any) -> dict[str, Any]:
    return {k: _round(v) for k, v in histogram.summary().items()}


def to_report(
    result: LoadResult,
    *,
    budgets: list[BudgetCheck] | None = None,
    warnings: list[str] | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    client, function = result.latency, result.function
    overhead = None
    if client.count and function.count:
        overhead = {
            p: _round((client.percentile(q) or 0) - (function.percentile(q) or 0))
            for p, q in (("p50", 50), ("p99", 99))
        }
    errors = {kind: result.errors.get(kind, 0) for kind in ERROR_KINDS}
    report: dict[str, Any] = {
        "target": result.target,
        "source": source or {},
        "profile": {
            "rps": result.profile.text,
            "duration_s": result.profile.duration_s,
            "mean_rps": _round(result.profile.mean_rps),
            "peak_rps": result.profile.peak_rps,
            "max_in_flight": result.max_in_flight,
        },
        "rate": {
            "target_rps": _round(result.target_rps),
            "achieved_rps": _round(result.achieved_rps),
            "achieved_share": _round(result.achieved_rps / result.target_rps if result.target_rps else None),
            "scheduled": result.scheduled,
            "sent": result.sent,
            "answered": result.answered,
            "answered_in_window": result.answered_in_window,
            "started_late": result.waited,
            "elapsed_s": _round(result.elapsed_s),
            "interrupted": result.interrupted,
        },
        "latency_ms": {
            "measured_from": "each request's due time (open loop: queueing included)",
            "client": _summary(client),
            "function": _summary(function),
            "overhead": overhead,
            "start_lag": _summary(result.start_lag),
        },
        "errors": {
            **errors,
            "error_rate": _round(result.error_rate, 5),
            "counted_in_error_rate": [k for k in ERROR_KINDS if k != "client_4xx"],
            "examples": dict(result.error_details),
        },
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "versions": dict(result.versions),
        "cold_starts": _cold_starts(result),
        "intervals": [
            {
                "t_s": _round(n * result.interval_s),
                "target_rps": _round(result.profile.target_rps_at((n + 0.5) * result.interval_s)),
                "due": interval.due,
                "answered_rps": _round(interval.answered / result.interval_s),
                "p50_ms": _round(interval.latency.percentile(50)),
                "p99_ms": _round(interval.latency.percentile(99)),
                "max_ms": _round(interval.latency.max_ms if interval.latency.count else None),
                "errors": dict(interval.errors),
            }
            for n, interval in enumerate(result.intervals)
        ],
        "warnings": warnings or [],
    }
    if result.billed.count:
        report["latency_ms"]["billed"] = _summary(result.billed)
    if budgets is not None:
        report["budgets"] = [b.to_dict() for b in budgets]
        report["passed"] = all(b.passed for b in budgets)
    return report


def _cold_starts(result: LoadResult) -> dict[str, Any]:
    if not result.environment_header_seen:
        return {
            "observed": None,
            "note": f"the answers carry no {ENVIRONMENT_HEADER} header (a deployment older than the load stage)",
        }
    by_version: dict[str, int] = {}
    for start in result.environments.values():
        key = start.version or "unknown"
        by_version[key] = by_version.get(key, 0) + 1
    first = sorted(result.environments.values(), key=lambda s: s.at_s)
    return {
        "observed": len(result.environments),
        "by_version": by_version,
        "first_answers": [
            {
                "environment": s.environment,
                "version": s.version,
                "at_s": s.at_s,
                "latency_ms": _round(s.latency_ms),
                "function_ms": _round(s.function_ms),
            }
            for s in first[:50]
        ],
        "note": "an environment's first answer in this run: a cold start unless it was already warm before the run",
    }


def render_text(report: dict[str, Any]) -> str:
    rate, latency, errors = report["rate"], report["latency_ms"], report["errors"]
    client, function = latency["client"], latency["function"]

    def ms(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        f"load on {report['target']}",
        f"  rate      target {rate['target_rps']:g}/s, achieved {rate['achieved_rps']:.1f}/s "
        f"({100 * (rate['achieved_share'] or 0):.1f}%); {rate['scheduled']} scheduled, {rate['sent']} sent, "
        f"{rate['answered']} answered, {rate['started_late']} started late (in-flight bound "
        f"{report['profile']['max_in_flight']})",
        "  latency   ms        p50     p90     p99   p99.9     max   (from each request's due time)",
    ]
    for label, block in (
        ("client", client),
        ("function", function),
        *([("billed", latency["billed"])] if "billed" in latency else []),
    ):
        lines.append(
            f"            {label:<8} "
            + " ".join(f"{ms(block.get(k)):>7}" for k in ("p50", "p90", "p99", "p99.9", "max"))
            + f"   ({block['count']} answers)"
        )
    if latency.get("overhead"):
        overhead = latency["overhead"]
        lines.append(
            f"            outside the function (queueing, network, gateway): p50 {ms(overhead['p50'])} ms, "
            f"p99 {ms(overhead['p99'])} ms (client minus function)"
        )
    lag = latency["start_lag"]
    if lag["count"]:
        lines.append(
            f"            sent after their due time by: p50 {ms(lag['p50'])} ms, p99 {ms(lag['p99'])} ms, max "
            f"{ms(lag['max'])} ms (waiting for an in-flight slot, or this machine's scheduling)"
        )
    shown = ", ".join(f"{k} {errors[k]}" for k in ERROR_KINDS)
    lines.append(f"  errors    {shown}; error rate {100 * errors['error_rate']:.2f}% (4xx excluded)")
    for kind, example in errors["examples"].items():
        lines.append(f"            {kind}: {example}")
    cold = report["cold_starts"]
    if cold["observed"] is None:
        lines.append(f"  cold starts: unknown ({cold['note']})")
    else:
        versions = ", ".join(f"version {v}: {n}" for v, n in cold["by_version"].items()) or "none"
        lines.append(f"  cold starts: {cold['observed']} environment(s) answered ({versions})")
    for warning in report["warnings"]:
        lines.append(f"  warning   {warning}")
    for check in report.get("budgets", []):
        mark = "ok    " if check["passed"] else "MISSED"
        lines.append(f"  budget    {mark} {check['budget']}: {check['measured']} (limit {check['limit']})")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Latency (p50, p99, max per second) above, target and achieved rate below, errors marked on the rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    intervals = report["intervals"]
    # steps-post draws each second from its start; the run's end closes the last step
    t = [i["t_s"] for i in intervals] + [report["profile"]["duration_s"]]

    def series(key: str) -> list[float]:
        values = [float("nan") if i[key] is None else float(i[key]) for i in intervals]
        return values + values[-1:]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for key, label in (("max_ms", "max"), ("p99_ms", "p99"), ("p50_ms", "p50")):
        top.plot(t, series(key), label=label, drawstyle="steps-post")
    budgets = {b["budget"]: b for b in report.get("budgets", [])}
    if "load.p99_ms" in budgets:
        limit = float(budgets["load.p99_ms"]["limit"].split()[1])
        top.axhline(limit, color="red", linestyle="--", label="p99 budget")
    top.set_ylabel("latency, ms (from due time)")
    top.set_yscale("log")
    top.yaxis.set_major_formatter(ScalarFormatter())
    top.legend(loc="upper left")
    top.set_title(f"load on {report['target']}")
    bottom.plot(t, series("answered_rps"), label="answered", drawstyle="steps-post")
    bottom.plot(t, series("target_rps"), label="target", linestyle="--", drawstyle="steps-post")
    errors = [sum(v for k, v in i["errors"].items() if k != "client_4xx") for i in intervals]
    bottom.bar(
        t[:-1],
        errors,
        width=0.8 * (t[1] - t[0] if len(t) > 1 else 1),
        align="edge",
        color="red",
        alpha=0.5,
        label="errors",
    )
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel("seconds into the run")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
