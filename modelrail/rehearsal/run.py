"""``modelrail rehearse``: the default scenario set, or one rollout of the user's own bundles."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from modelrail.local.environment import LocalCloud
from spec.base import SpecError
from spec.bundle import BundleError, ModelBundle
from spec.models import load_spec

from .scenarios import DEFAULT_TIME_SCALE, Scenario, default_scenarios, run_scenario, throttle_warning
from .traffic import load_traffic_file
from .verdict import describe_layer
from .view import RehearsalView


def rehearse(args: argparse.Namespace) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(soft_wrap=True)  # whole lines in logs and CI output
    if bool(args.baseline) != bool(args.candidate):
        console.print("modelrail: --baseline and --candidate go together", style="red")
        return 2
    if args.expect and not args.baseline:
        console.print("modelrail: --expect goes with --baseline and --candidate", style="red")
        return 2
    try:
        environment = load_spec().environment(args.env)
        replay = load_traffic_file(Path(args.traffic)) if args.traffic else None
        if args.baseline:
            _note_names(ModelBundle.load(args.baseline), ModelBundle.load(args.candidate))
    except (SpecError, BundleError, ValueError, OSError) as exc:
        console.print(f"modelrail: {exc}", style="red", highlight=False)
        return 2
    warning = throttle_warning(environment, args.rate)
    if warning:
        print(f"modelrail: warning: {warning}", file=sys.stderr)
    own = args.baseline is not None
    scenarios = (
        [
            Scenario(
                f"{Path(args.baseline).name} -> {Path(args.candidate).name}",
                Path(args.baseline),
                Path(args.candidate),
                args.expect or "promoted",  # anything else fails the command unless --expect says it was the point
            )
        ]
        if own
        else default_scenarios()
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    view = RehearsalView(console)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        with LocalCloud(Path(args.capture) if args.capture else None) as cloud:
            for scenario in scenarios:
                if stop.is_set():
                    break
                results.append(
                    run_scenario(
                        scenario,
                        environment,
                        cloud,
                        view,
                        time_scale=args.time_scale or DEFAULT_TIME_SCALE,
                        rate=args.rate,
                        replay=replay,
                        stop=stop,
                        mistakes=args.mistakes,
                    )
                )
    except (BundleError, ValueError) as exc:
        console.print(f"modelrail: {exc}", style="red", highlight=False)
        return 2
    elapsed = time.monotonic() - started

    report = {
        "environment": environment.name,
        "time_scale": args.time_scale or DEFAULT_TIME_SCALE,
        "wall_clock_s": round(elapsed, 1),
        "scenarios": results,
    }
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    console.rule("[bold]rehearsal summary")
    for result in results:
        mark = "as expected" if result["as_expected"] else f"EXPECTED {result['expected']}"
        if own and not result["as_expected"] and not args.expect:
            mark += f"; --expect {result['outcome']} if that was the point"
        console.print(f"{result['name']}: {result['outcome']} ({mark}) - {result['reason']}", highlight=False)
        console.print(f"  decided by: {describe_layer(result['decided_by'])}{_agreement(result)}", highlight=False)
        console.print(f"  {_shares(result)}", highlight=False)
    console.print(
        f"{len(results)} scenario(s) in {elapsed:.0f} s" + (f"; report: {args.report}" if args.report else "")
    )
    if args.capture:
        from modelrail.serving import capture_summary

        shown = args.baseline or "models/iris"  # the default scenarios' model
        console.print(capture_summary(Path(args.capture), Path(shown)), highlight=False, soft_wrap=True)
    if own and results:
        from modelrail.serving import rollout_next

        line = rollout_next(results[-1]["outcome"], args.baseline, args.candidate, environment.name)
        console.print(line, highlight=False, soft_wrap=True)
    if stop.is_set():
        return 130
    return 0 if len(results) == len(scenarios) and all(r["as_expected"] for r in results) else 1


def _note_names(baseline: ModelBundle, candidate: ModelBundle) -> None:
    """The candidate is rehearsed as the next version of the baseline's model, as a deploy of it would be."""
    if candidate.name != baseline.name:
        print(
            f"modelrail: note: the candidate is named '{candidate.name}', the baseline '{baseline.name}': "
            f"rehearsing it as the next version of '{baseline.name}'",
            file=sys.stderr,
        )


def _agreement(result: dict[str, Any]) -> str:
    """The replay's agreement with the live version, and the paired canary comparison, when they ran."""
    parts = []
    replay = result.get("replay") or {}
    if "replay agreement" in replay:
        parts.append(f"replay: {replay['replay agreement']}")
    elif "replay" in replay:
        parts.append(f"replay: {replay['replay']}")
    paired = (result.get("canary_analysis") or {}).get("paired")
    if paired and paired.get("compared"):
        parts.append(
            f"paired canary: {paired['disagreed']} of {paired['compared']} requests answered otherwise by the old "
            "version"
        )
    return "; " + "; ".join(parts) if parts else ""


def _shares(result: dict[str, Any]) -> str:
    """The candidate's failed share next to what all users saw from its first request to the decision."""
    window = result.get("deployment_window")
    if window is None:
        return "the candidate served no user requests"
    return (
        f"candidate: {window['candidate_failed']} of {window['candidate_requests']} requests failed "
        f"({window['candidate_failed_share']:.1%}; {window['candidate_client_errors']} answered 4xx); "
        f"all requests in the deployment window ({window['seconds']:.0f} rehearsed s): {window['failed']} of "
        f"{window['requests']} failed ({window['failed_share']:.1%})"
    )
