"""``python -m modelrail``: serve bundles locally, and run the demo."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from infra.bundle import BundleError, ModelBundle

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_BUNDLE = ROOT / "models" / "iris"


def _load_bundles(paths: list[str]) -> list[ModelBundle]:
    return [ModelBundle.load(p) for p in paths]


def cmd_serve(args: argparse.Namespace) -> int:
    from .local.environment import LocalEnvironment

    bundles = _load_bundles(args.bundles)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"starting the embedded AWS and {len(bundles)} model(s)...", file=sys.stderr, flush=True)
    with LocalEnvironment(bundles, host=args.host, port=args.port) as env:
        for bundle in bundles:
            print(f"  {bundle.name}: POST {env.url}/v2/models/{bundle.name}/infer", file=sys.stderr)
        print(env.url, flush=True)
        stop.wait()
        print("stopping", file=sys.stderr, flush=True)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate

    bundle = ModelBundle.load(args.bundle)
    against = ModelBundle.load(args.against) if args.against else None
    if against is not None and against.name != bundle.name:
        print(f"modelrail: note: comparing '{bundle.name}' against a bundle named '{against.name}'", file=sys.stderr)
    verdict = validate(bundle, against)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        print(f"acceptance gate for '{bundle.name}' ({bundle.root}):\n")
        print(verdict.table())
        print()
        if verdict.passed:
            print("PASSED: this version may receive traffic")
        else:
            print(f"FAILED: {', '.join(verdict.failing())}")
    return 0 if verdict.passed else 1


def cmd_tour(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.bundle)


def cmd_rehearse(args: argparse.Namespace) -> int:
    from .rehearsal.run import rehearse

    return rehearse(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrail", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve bundles over the Open Inference Protocol on localhost")
    serve.add_argument("bundles", nargs="+", metavar="BUNDLE", help="a bundle folder or a .onnx file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    serve.set_defaults(run=cmd_serve)

    check = commands.add_parser("validate", help="run the acceptance gate on a bundle locally")
    check.add_argument("bundle", metavar="BUNDLE")
    check.add_argument("--against", metavar="BUNDLE", help="the bundle it would replace (signature compatibility)")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(run=cmd_validate)

    rehearse = commands.add_parser(
        "rehearse", help="rehearse rollouts locally: acceptance gate, canary, alarms, automatic rollback"
    )
    rehearse.add_argument("--baseline", metavar="BUNDLE", help="the version serving now (with --candidate)")
    rehearse.add_argument("--candidate", metavar="BUNDLE", help="the new version to roll out (with --baseline)")
    rehearse.add_argument("--traffic", metavar="FILE.jsonl", help="request bodies to replay, one per line")
    rehearse.add_argument("--env", default="production", help="the spec environment to rehearse (cdk.json)")
    rehearse.add_argument("--time-scale", type=float, default=None, help="rehearsed seconds per real second")
    rehearse.add_argument("--rate", type=float, default=40.0, help="requests per real second (default 40)")
    rehearse.add_argument("--report", metavar="PATH", help="write the JSON report here")
    rehearse.set_defaults(run=cmd_rehearse)

    tour = commands.add_parser("tour", help="serve the sample model, send it real requests, print the answers")
    tour.add_argument("--bundle", default=str(SAMPLE_BUNDLE))
    tour.set_defaults(run=cmd_tour)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BundleError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
