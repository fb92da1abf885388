"""``python -m modelrail``: serve bundles locally, and run the demo."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from spec.bundle import BundleError, ModelBundle

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_BUNDLE = ROOT / "models" / "iris"
OUTCOMES = ("promoted", "blocked", "rolled_back", "inconclusive")  # a rehearsed rollout's (rehearsal/controller.py)


def _load_bundles(paths: list[str]) -> list[ModelBundle]:
    return [ModelBundle.load(p) for p in paths]


def cmd_serve(args: argparse.Namespace) -> int:
    from .local.environment import LocalEnvironment
    from .local.versions import VersionClash
    from .serving import serving_lines

    bundles = _load_bundles(args.bundles)
    capture = Path(args.capture) if args.capture else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        env = LocalEnvironment(bundles, host=args.host, port=args.port, capture_dir=capture)
    except VersionClash as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    print(f"starting the embedded AWS and {len(bundles)} bundle(s)...", file=sys.stderr, flush=True)
    with env:
        print(serving_lines(env), file=sys.stderr)
        print(env.url, flush=True)
        stop.wait()
        print("stopping" + (f": delivering captured requests into {capture}" if capture else ""), file=sys.stderr)
    if capture is not None:
        print(serving_lines(env, stopped=True), file=sys.stderr, flush=True)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .init import InitError, init_bundle, summary

    data = Path(args.data) if args.data else None
    try:
        result = init_bundle(
            Path(args.bundle),
            Path(args.model),
            data=data,
            labels=args.labels,
            pass_rate=args.pass_rate,
            cases=args.cases,
            name=args.name,
            force=args.force,
        )
    except InitError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    print(summary(result, Path(args.model), data))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import ReplayPathError, validate

    bundle = ModelBundle.load(args.bundle)
    against = ModelBundle.load(args.against) if args.against else None
    if against is not None and against.name != bundle.name:
        print(f"modelrail: note: comparing '{bundle.name}' against a bundle named '{against.name}'", file=sys.stderr)
    try:
        verdict = validate(bundle, against, Path(args.replay) if args.replay else None)
    except ReplayPathError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        print(f"acceptance gate for '{bundle.name}' ({bundle.root}):\n")
        print(verdict.table())
        print()
        if verdict.passed:
            print("PASSED: this version may receive traffic")
            print(f"next: python -m modelrail serve {bundle.root} --capture capture/   # try it over HTTP")
        else:
            print(f"FAILED: {', '.join(verdict.failing())}")
    return 0 if verdict.passed else 1


def cmd_tour(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.bundle)


def _operate(args: argparse.Namespace, action: str) -> int:
    from .operate import aws as operate_aws
    from .operate.deployments import read_deployments
    from .operate.render import history_text, rollback_text, status_text, to_json
    from .operate.resources import read_stack, stack_name
    from .operate.rollback import rollback
    from .operate.status import read_status

    try:
        aws = operate_aws.connect(region=args.region, profile=args.profile)
        stack = read_stack(aws, stack_name(stack=args.stack, env=args.env))
        models = stack.select(args.model)
        if action == "status":
            statuses = [read_status(aws, m, window_minutes=args.minutes) for m in models]
            if args.json:
                document = {"stack": stack.stack, "region": stack.region, "hotfix": stack.hotfix, "models": statuses}
                print(json.dumps(to_json(document), indent=2))
            else:
                print(status_text(stack, statuses))
        elif action == "history":
            found = {m.model: read_deployments(aws, m, limit=args.limit) for m in models}
            if args.json:
                print(json.dumps(to_json(found), indent=2))
            else:
                print("\n\n".join(history_text(m, found[m.model]) for m in models))
        else:
            if len(models) > 1:
                names = ", ".join(m.model for m in models)
                raise operate_aws.OperateError(f"rollback one model at a time: give --model (one of {names})")
            result = rollback(aws, models[0], force=args.force, to_version=args.to)
            print(json.dumps(to_json(result), indent=2) if args.json else rollback_text(result))
    except operate_aws.OperateError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return _operate(args, "status")


def cmd_rollback(args: argparse.Namespace) -> int:
    return _operate(args, "rollback")


def cmd_history(args: argparse.Namespace) -> int:
    return _operate(args, "history")


def cmd_rehearse(args: argparse.Namespace) -> int:
    from .rehearsal.run import rehearse

    return rehearse(args)


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baseline import BaselineError, write_baseline

    bundle = ModelBundle.load(args.bundle)
    try:
        path, baseline = write_baseline(bundle, Path(args.data))
    except BaselineError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {path}: {baseline['rows']} rows, {len(baseline['features'])} features, "
        f"predictions {', '.join(baseline['predictions']) or 'none'}"
    )
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from .baseline import BaselineError, drift, plot, print_report

    bundle = ModelBundle.load(args.baseline)
    try:
        report = drift(bundle, Path(args.capture), args.version)
        title = f"drift of '{bundle.name}': {report.rows} rows ({args.capture}) against {bundle.baseline_path}"
        print_report(report, title)
        if args.png:
            shown = plot(report, Path(args.png), title)
            print(f"wrote {args.png} ({shown} distributions against the baseline)")
    except BaselineError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    significant = [e.name for e in report.entries if e.verdict == "significant"]
    if significant:
        print(f"SIGNIFICANT DRIFT: {', '.join(significant)}")
    print(
        "next: "
        + ("retrain on recent data, make it a bundle (" if significant else "when you retrain, make a bundle (")
        + f"python -m modelrail init NEW --model new.onnx --data FILE) and rehearse its rollout: python -m modelrail "
        f"rehearse --baseline {bundle.root} --candidate NEW"
    )
    return 1 if significant else 0


def cmd_load(args: argparse.Namespace) -> int:
    from .load.run import load

    return load(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrail", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve bundles over the Open Inference Protocol on localhost")
    serve.add_argument("bundles", nargs="+", metavar="BUNDLE", help="a bundle folder or a .onnx file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    serve.add_argument(
        "--capture", metavar="DIR", help="capture every answered request into DIR, in the deployed layout (for drift)"
    )
    serve.set_defaults(run=cmd_serve)

    init = commands.add_parser(
        "init", help="make a bundle folder from a model and data: acceptance set, drift baseline, settings"
    )
    init.add_argument("bundle", metavar="BUNDLE", help="the bundle folder to make (its name is the model's name)")
    init.add_argument("--model", required=True, metavar="MODEL.onnx", help="the ONNX model")
    init.add_argument(
        "--data", metavar="FILE", help="example inputs: CSV, Parquet, or JSONL of inference requests (recommended)"
    )
    init.add_argument(
        "--labels",
        metavar="COLUMN",
        help="the data's column of true labels: an accuracy set instead of the model's own answers",
    )
    init.add_argument(
        "--pass-rate",
        type=float,
        metavar="SHARE",
        help="with --labels: the share the gate asks to be right (default: 2 points under what this model gets right)",
    )
    init.add_argument("--cases", type=int, default=100, help="acceptance cases to take from the data (default 100)")
    init.add_argument("--name", help="the model's name in the API (default: the folder's name)")
    init.add_argument("--force", action="store_true", help="overwrite the files of an existing bundle")
    init.set_defaults(run=cmd_init)

    check = commands.add_parser("validate", help="run the acceptance gate on a bundle locally")
    check.add_argument("bundle", metavar="BUNDLE")
    check.add_argument(
        "--against",
        metavar="BUNDLE",
        help="the bundle it would replace: signature compatibility, and both versions on its acceptance inputs",
    )
    check.add_argument(
        "--replay",
        metavar="PATH",
        help="capture files (.gz or JSON lines) or a folder of them, replayed as the gate replays captured traffic",
    )
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(run=cmd_validate)

    rehearse = commands.add_parser(
        "rehearse", help="rehearse rollouts locally: acceptance gate, canary, alarms, automatic rollback"
    )
    rehearse.add_argument("--baseline", metavar="BUNDLE", help="the version serving now (with --candidate)")
    rehearse.add_argument("--candidate", metavar="BUNDLE", help="the new version to roll out (with --baseline)")
    rehearse.add_argument(
        "--traffic",
        metavar="FILE.jsonl",
        help="request bodies to replay as given, one per line, or capture records (file or folder) rebuilt from inputs",
    )
    rehearse.add_argument(
        "--mistakes",
        type=float,
        metavar="RATE",
        help="share of requests sent as client mistakes (wrong shape, datatype, not JSON) instead; default 0 with "
        "--traffic, 0.03 for generated traffic",
    )
    rehearse.add_argument("--env", default="production", help="the spec environment to rehearse (cdk.json)")
    rehearse.add_argument("--time-scale", type=float, default=None, help="rehearsed seconds per real second")
    rehearse.add_argument("--rate", type=float, default=40.0, help="requests per real second (default 40)")
    rehearse.add_argument("--report", metavar="PATH", help="write the JSON report here")
    rehearse.add_argument(
        "--capture",
        metavar="DIR",
        help="copy the capture stream's objects here, in the deployed layout (at the environment's sample rate)",
    )
    rehearse.add_argument(
        "--expect",
        choices=OUTCOMES,
        help="with --baseline/--candidate: the outcome this rollout should have; exit 0 if it does, 1 otherwise "
        "(default: promoted)",
    )
    rehearse.set_defaults(run=cmd_rehearse)

    baseline = commands.add_parser(
        "baseline", help="compute a bundle's drift baseline (baseline.json) from reference data"
    )
    baseline.add_argument("bundle", metavar="BUNDLE")
    baseline.add_argument(
        "--data", required=True, metavar="FILE", help="reference data: CSV, Parquet, or JSONL of inference requests"
    )
    baseline.set_defaults(run=cmd_baseline)

    drift = commands.add_parser("drift", help="compare captured traffic with a bundle's baseline: PSI per feature")
    drift.add_argument("--baseline", required=True, metavar="BUNDLE", help="the bundle holding baseline.json")
    drift.add_argument(
        "--capture",
        required=True,
        metavar="PATH",
        help="capture records (a .gz/.jsonl file or a folder of them), or data read as baseline reads it: CSV, "
        "Parquet, JSONL of inference requests",
    )
    drift.add_argument("--version", help="only the records of this model version")
    drift.add_argument("--png", metavar="FILE", help="plot the worst features against the baseline into this PNG")
    drift.set_defaults(run=cmd_drift)

    load = commands.add_parser(
        "load", help="open-loop load on a deployed environment, a URL or a local bundle; checks the spec's budgets"
    )
    from .load.run import add_arguments as add_load_arguments

    add_load_arguments(load)
    load.set_defaults(run=cmd_load)

    tour = commands.add_parser("tour", help="serve a bundle, send it real requests, print the answers")
    tour.add_argument("--bundle", default=str(SAMPLE_BUNDLE), help="any bundle (default: the sample, models/iris)")
    tour.set_defaults(run=cmd_tour)

    # Operating a deployed stack: boto3's standard credential chain and region, or --profile/--region.
    deployed = argparse.ArgumentParser(add_help=False)
    which = deployed.add_mutually_exclusive_group(required=True)
    which.add_argument("--env", help="the spec environment: its stack is modelrail-ENV")
    which.add_argument("--stack", help="the CloudFormation stack name")
    deployed.add_argument("--model", help="only this model (default: every model of the stack)")
    deployed.add_argument(
        "--region", help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, else your profile's)"
    )
    deployed.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / the standard chain)")
    deployed.add_argument("--json", action="store_true", help="print JSON for scripts")

    status = commands.add_parser(
        "status", parents=[deployed], help="a deployed stack: alias weights, deployment, alarms, traffic by version"
    )
    status.add_argument("--minutes", type=int, default=15, help="traffic window (default 15)")
    status.set_defaults(run=cmd_status)

    back = commands.add_parser(
        "rollback", parents=[deployed], help="stop the deployment in flight, or deploy the previous version again"
    )
    back.add_argument("--force", action="store_true", help="with no deployment in flight: set the alias directly")
    back.add_argument("--to", metavar="VERSION", help="roll back to this version (default: the previous one)")
    back.set_defaults(run=cmd_rollback)

    history = commands.add_parser("history", parents=[deployed], help="a model's deployments, newest first")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.set_defaults(run=cmd_history)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BundleError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
