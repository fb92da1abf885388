"""CDK entry point: one stack per environment of the deployment spec, from the same constructs.

``npx cdk synth`` / ``cdk deploy modelrail-production`` run it with the CLI's context; ``python app.py`` (what
``make synth`` runs, without the CLI) reads cdk.json's context itself and writes ``cdk.out/``. Offline once the
runtime layer is built: its first build downloads the pinned wheels from the package index (layers/build.py).
cdk-nag's AwsSolutions pack validates every stack at synth; an unacknowledged finding fails the synth, and the
synth ends with a one-line summary of what it found and what is acknowledged.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")  # a warning banner, not an error
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.audit import caller_identity, hotfix_log_line
from infra.layer import build_layer
from infra.nag_summary import nag_summary
from infra.stack import ApiAccountStack, ModelrailStack
from layers.build import LayerBuildError
from spec.base import SpecError
from spec.models import CDK_JSON, CONTEXT_KEY, parse_spec
from spec.rollout import HOTFIX_CONTEXT_KEY, parse_hotfix

ROOT = Path(__file__).resolve().parent
STACK_PREFIX = "modelrail"


def create_app(
    context: dict | None = None, outdir: str | None = None, *, base_dir: Path = ROOT, nag: bool = True
) -> cdk.App:
    """The app with one ModelrailStack per environment. ``context``: cdk.json's when not run by the CDK CLI."""
    launched_by_cli = "CDK_OUTDIR" in os.environ or "CDK_CONTEXT_JSON" in os.environ
    if context is None and not launched_by_cli:
        context = json.loads((base_dir / "cdk.json").read_text()).get("context", {})
    app = cdk.App(context=context, outdir=outdir or (None if launched_by_cli else str(base_dir / "cdk.out")))
    spec = parse_spec(app.node.try_get_context(CONTEXT_KEY), source=str(base_dir / CDK_JSON.name))
    models = spec.resolve_models(base_dir)
    # A hotfix is asked for per deploy (-c modelrail.hotfix=<reason>) and names who asked: STS is called only then.
    hotfix = parse_hotfix(app.node.try_get_context(HOTFIX_CONTEXT_KEY))
    if hotfix is not None:
        who = caller_identity(deploying_account=os.environ.get("CDK_DEFAULT_ACCOUNT"))
        hotfix = hotfix.model_copy(update={"requested_by": who})
        stacks = [f"{STACK_PREFIX}-{name}" for name in spec.environments]
        print(hotfix_log_line(hotfix, stacks), file=sys.stderr)
    layers = {}
    account_stacks: dict[tuple[str | None, str | None], ApiAccountStack] = {}
    for name, environment in spec.environments.items():
        arch = environment.function.architecture
        if arch not in layers:
            layers[arch] = build_layer(arch, log=lambda line: print(line, file=sys.stderr))
        env = cdk.Environment(
            account=environment.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=environment.region or os.environ.get("CDK_DEFAULT_REGION"),
        )
        # Environments without an explicit account and region deploy to the CLI's, so they share one.
        place = (environment.account, environment.region)
        if place not in account_stacks:
            account_stacks[place] = ApiAccountStack(
                app,
                "-".join([f"{STACK_PREFIX}-api-account", *filter(None, place)]),
                env=env,
                description="modelrail: API Gateway's account-wide logging role (one per account and region)",
            )
        stack = ModelrailStack(
            app,
            f"{STACK_PREFIX}-{name}",
            environment=environment,
            models=models,
            layer=layers[arch],
            hotfix=hotfix,
            env=env,
            description=f"modelrail: {', '.join(m.name for m in models)} behind API Gateway with CodeDeploy rollouts",
        )
        stack.add_stack_dependency(account_stacks[place], "API Gateway logs through the account's CloudWatch role")
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app


def main() -> int:
    try:
        app = create_app()
    except SpecError as exc:
        print(f"modelrail: {exc}", file=sys.stderr)
        return 2
    except LayerBuildError as exc:  # one line naming the cause: pip's retries and traceback say less
        print(f"modelrail: {exc}", file=sys.stderr)
        return 1
    assembly = app.synth()
    errors = [(s.stack_name, m) for s in assembly.stacks for m in s.messages if str(m.level).endswith("ERROR")]
    for stack, message in errors:
        print(f"{stack}: {message.id}: {message.entry.data}", file=sys.stderr)
    print(f"synthesized {', '.join(s.stack_name for s in assembly.stacks)} -> {assembly.directory}", file=sys.stderr)
    print(nag_summary(Path(assembly.directory)), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
