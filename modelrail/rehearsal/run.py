"""``modelrail rehearse``: the default scenario set, or one rollout of the user's own bundles."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from modelrail.local.environment import LocalCloud
from spec.base import SpecError
from spec.bundle import BundleError
from spec.models import load_spec

from .scenarios import DEFAULT_TIME_SCALE, Scenario, default_scenarios, run_scenario
from .traffic import load_traffic_file
from .view import RehearsalView


def rehearse(args: argparse.Namespace) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(soft_wrap=True)  # whole lines in logs and CI output
    if bool(args.baseline) != bool(args.candidate):
        console.print("modelrail: --baseline and --candidate go together", style="red")
        return 2
    try:
        environment = load_spec().environment(args.env)
        replay = load_traffic_file(Path(args.traffic)) if args.traffic else None
    except (SpecError, BundleError, ValueError, OSError) as exc:
        console.print(f"modelrail: {exc}", style="red", highlight=False)
        return 2
    own = args.baseline is not None
    scenarios = (
        [
            Scenario(
                f"{Path(args.baseline).name} -> {Path(args.candidate).name}", Path(args.baseline), Path(args.candidate)
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
        with LocalCloud() as cloud:
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
        console.print(
            f"{result['name']}: {result['outcome']} ({mark}) - {result['reason']}; candidate served "
            f"{result['candidate_served']} user requests, failed {result['candidate_failed']}",
            highlight=False,
        )
    console.print(
        f"{len(results)} scenario(s) in {elapsed:.0f} s" + (f"; report: {args.report}" if args.report else "")
    )
    if stop.is_set():
        return 130
    if own:
        return 0
    return 0 if len(results) == len(scenarios) and all(r["as_expected"] for r in results) else 1
