"""``modelrail load``: an open-loop load run against a deployed environment (``--env``), any OIP URL (``--url``) or
a local bundle (``--local``), its report, the spec's load budgets (exit 1 naming each one missed) and, with
``--memory-sweep``, the same load at several memory sizes."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spec.base import SpecError
from spec.bundle import BundleError, ModelBundle
from spec.environment import EnvironmentSpec, LoadBudget
from spec.models import load_spec

from .capacity import check_capacity
from .generator import LoadResult, run_load, server_timing_ms
from .report import check_budgets, plot, render_text, to_report
from .schedule import RateProfile
from .targets import HttpTarget, Target

DEFAULT_DURATION_S = 10.0
DEFAULT_RPS = "20"
PROBE_REQUESTS = 5


class LoadError(Exception):
    """A load run that cannot start; the message names the argument or file at fault."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="a deployed spec environment: its stack modelrail-ENV, URL and auth from outputs")
    where.add_argument("--url", help="any Open Inference Protocol infer URL (http(s)://host/v2/models/NAME/infer)")
    where.add_argument("--local", metavar="BUNDLE", help="start the local environment with this bundle, as serve does")
    parser.add_argument("--model", help="with --env: the model (default: the stack's only one)")
    parser.add_argument(
        "--traffic",
        metavar="FILE.jsonl",
        help="OIP request bodies, one a line, or capture records (a file or a folder in the deployed layout), "
        "rebuilt from their inputs (default: the bundle's acceptance set)",
    )
    parser.add_argument(
        "--rps",
        help="requests per second: 50, a ramp 10:100, or steps 10,20,40 (default: the spec's load.peak_rps "
        f"with --env, else {DEFAULT_RPS})",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds (default: the spec's load.duration_seconds with --env, else 10)"
    )
    parser.add_argument("--max-in-flight", type=int, default=64, help="bound on requests in flight (default 64)")
    parser.add_argument("--shuffle", action="store_true", help="replay the traffic in random order (seeded)")
    parser.add_argument("--timeout", type=float, default=29.0, help="per request, seconds (API Gateway's limit: 29)")
    parser.add_argument("--budget", metavar="ENV", help="check against this spec environment's load budgets")
    parser.add_argument(
        "--function-ms", type=float, help="function time per request for the capacity check (default: measured)"
    )
    parser.add_argument("--report", metavar="FILE.json", help="write the report as JSON")
    parser.add_argument("--png", metavar="FILE.png", help="plot latency and rate over time")
    parser.add_argument(
        "--memory-sweep", metavar="MB,MB,...", help="with --env: the same load at each memory size (new versions)"
    )
    parser.add_argument("--keep-versions", action="store_true", help="keep the versions the memory sweep publishes")
    parser.add_argument(
        "--region", help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, else your profile's)"
    )
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / the standard chain)")


def _bodies(traffic: str | None, bundle: ModelBundle | None) -> list[bytes]:
    from modelrail.rehearsal.traffic import load_traffic_file

    if traffic:
        return [json.dumps(body).encode() for body in load_traffic_file(Path(traffic))]
    if bundle is None:
        raise LoadError("--traffic FILE.jsonl is needed: no bundle to take an acceptance set from")
    cases = bundle.acceptance_cases()
    if not cases:
        raise LoadError(f"{bundle.root}: no acceptance set to send; give --traffic FILE.jsonl")
    return [json.dumps({"inputs": case.inputs}).encode() for case in cases]


def _spec_environment(name: str) -> EnvironmentSpec:
    return load_spec().environment(name)


def _bundle_for(model: str) -> ModelBundle | None:
    for deployed in load_spec().resolve_models():
        if deployed.name == model and deployed.bundle is not None:
            return deployed.bundle
    return None


def probe_function_ms(target: Target, body: bytes, requests: int = PROBE_REQUESTS) -> float | None:
    """Median time per request from a few requests one at a time: Server-Timing's total, else the client's."""
    import time

    times = []
    for _ in range(requests):
        started = time.monotonic()
        answer = target.send(body)
        client_ms = (time.monotonic() - started) * 1000
        if answer.status is None or answer.status >= 400:
            continue
        times.append(server_timing_ms(answer.headers.get("server-timing")) or client_ms)
    return statistics.median(times) if times else None


@contextmanager
def _local(bundle: ModelBundle) -> Iterator[str]:
    from modelrail.local.environment import LocalEnvironment

    print(f"starting the local environment with {bundle.name}...", file=sys.stderr, flush=True)
    with LocalEnvironment([bundle]) as environment:
        yield f"{environment.url}/v2/models/{bundle.name}/infer"


def load(args: argparse.Namespace) -> int:
    from modelrail.operate import aws as operate_aws

    try:
        return _load(args)
    except (LoadError, SpecError, BundleError, ValueError, OSError) as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    except operate_aws.OperateError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return exc.exit_code


def _load(args: argparse.Namespace) -> int:
    spec_env = _spec_environment(args.env) if args.env else None
    budget_env = _spec_environment(args.budget) if args.budget else spec_env
    budget: LoadBudget | None = budget_env.load if budget_env is not None else None
    if args.budget and budget is None:
        raise LoadError(f"--budget {args.budget}: the spec's environment {args.budget!r} has no load section")
    if args.memory_sweep and not args.env:
        raise LoadError("--memory-sweep needs --env: it publishes versions of a deployed function")
    duration = args.duration or (budget.duration_seconds if budget else DEFAULT_DURATION_S)
    rps = args.rps or (f"{budget.peak_rps:g}" if budget else DEFAULT_RPS)
    profile = RateProfile.parse(rps, duration)
    if args.max_in_flight < 1:
        raise LoadError(f"--max-in-flight must be at least 1, got {args.max_in_flight}")

    if args.local:
        bundle = ModelBundle.load(args.local)
        bodies = _bodies(args.traffic, bundle)
        with _local(bundle) as url:
            target = HttpTarget(url, timeout_s=args.timeout, description=f"{url} (local: {bundle.name})")
            return _run_and_report(args, target, bodies, profile, budget, budget_env, {"local": str(bundle.root)})
    if args.url:
        bodies = _bodies(args.traffic, None)
        target = HttpTarget(args.url, timeout_s=args.timeout)
        return _run_and_report(args, target, bodies, profile, budget, budget_env, {"url": args.url})
    return _deployed(args, spec_env, profile, budget)


def _deployed(
    args: argparse.Namespace, spec_env: EnvironmentSpec | None, profile: RateProfile, budget: LoadBudget | None
) -> int:
    from modelrail.operate import aws as operate_aws
    from modelrail.operate.resources import stack_name

    from .deployed import http_target, read_endpoint
    from .sweep import memory_sweep

    assert spec_env is not None
    aws = operate_aws.connect(region=args.region, profile=args.profile)
    stack = stack_name(stack=None, env=args.env)
    endpoint = read_endpoint(aws, stack, args.model, spec_auth=spec_env.api.auth)
    bodies = _bodies(args.traffic, _bundle_for(endpoint.model))
    source = {
        "env": args.env,
        "stack": stack,
        "model": endpoint.model,
        "auth": endpoint.auth,
        "url": endpoint.infer_url,
    }
    if not args.memory_sweep:
        target = http_target(aws, endpoint, timeout_s=args.timeout)
        return _run_and_report(args, target, bodies, profile, budget, spec_env, source)

    try:
        sizes = [int(size) for size in args.memory_sweep.split(",")]
    except ValueError:
        raise LoadError(
            f"--memory-sweep {args.memory_sweep!r}: expected memory sizes in MB, e.g. 512,1024,2048"
        ) from None
    for size in sizes:
        if not 128 <= size <= 10240:
            raise LoadError(f"--memory-sweep: {size} MB is outside Lambda's 128..10240 MB")
    p99_budget = budget.p99_ms if budget else float("inf")
    max_error = budget.max_error_rate_percent / 100 if budget else 1.0
    reports: dict[str, Any] = {}

    def run(target: Target) -> LoadResult:
        print(f"load on {target.description}", file=sys.stderr, flush=True)
        result = run_load(target, bodies, profile, max_in_flight=args.max_in_flight, shuffle=args.shuffle)
        reports[target.description] = to_report(result, source=source)
        return result

    from botocore.config import Config

    invoker = aws.session.client(
        "lambda",
        region_name=aws.region,
        config=Config(
            max_pool_connections=args.max_in_flight, read_timeout=args.timeout + 5, retries={"max_attempts": 0}
        ),
    )
    sweep = memory_sweep(
        aws,
        endpoint.resources,
        sizes,
        run,
        p99_budget_ms=p99_budget,
        max_error_rate=max_error,
        invoke_client=invoker,
        keep_versions=args.keep_versions,
    )
    print(sweep.text())
    if args.report:
        Path(args.report).write_text(json.dumps({"sweep": sweep.to_dict(), "runs": reports}, indent=2))
    return 0 if sweep.cheapest is not None else 1


def _run_and_report(
    args: argparse.Namespace,
    target: Target,
    bodies: list[bytes],
    profile: RateProfile,
    budget: LoadBudget | None,
    budget_env: EnvironmentSpec | None,
    source: dict[str, Any],
) -> int:
    warnings: list[str] = []
    if budget_env is not None:
        function_ms = args.function_ms or probe_function_ms(target, bodies[0])
        if function_ms is None:
            warnings.append("capacity not checked: the probe requests got no successful answer")
        else:
            capacity = check_capacity(budget_env, profile.peak_rps, function_ms)
            warnings.extend(capacity.warnings)
            print(
                f"capacity: peak {profile.peak_rps:g}/s x {function_ms:.1f} ms = {capacity.environments_needed} "
                "concurrent executions (Little's law)",
                file=sys.stderr,
            )
        for warning in warnings:
            print(f"modelrail: warning: {warning}", file=sys.stderr, flush=True)
    result = run_load(target, bodies, profile, max_in_flight=args.max_in_flight, shuffle=args.shuffle)
    budgets = check_budgets(result, budget) if budget is not None else None
    report = to_report(result, budgets=budgets, warnings=warnings, source=source)
    print(render_text(report))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.report}")
    if args.png:
        plot(report, Path(args.png))
        print(f"wrote {args.png}")
    if budgets is None:
        return 0
    missed = [b.name for b in budgets if not b.passed]
    if missed:
        print(f"LOAD BUDGETS MISSED: {', '.join(missed)}")
        return 1
    print("load budgets met")
    return 0
