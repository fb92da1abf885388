"""What ``modelrail serve`` tells the user: where each model and version answers, and what to run next."""

from __future__ import annotations

from pathlib import Path

from .local.environment import LocalEnvironment


def serving_lines(env: LocalEnvironment, *, stopped: bool = False) -> str:
    if stopped:
        return captured_lines(env)
    lines = []
    for name, served in env.versions.items():
        newest = served[-1]
        lines.append(
            f"  {name}: POST {env.url}/v2/models/{name}/infer (version {newest.version}, {newest.bundle.root})"
        )
        if len(served) > 1:
            for s in served:
                path = f"/v2/models/{name}/versions/{s.version}/infer"
                lines.append(f"    version {s.version} ({s.bundle.root}): POST {env.url}{path}")
    if env.capture_dir is not None:
        lines.append(f"  capturing every answered request into {env.capture_dir} (delivered every minute and at stop)")
    lines.append("stop with Ctrl-C")
    return "\n".join(lines)


def captured_lines(env: LocalEnvironment) -> str:
    assert env.capture_dir is not None
    served = env.versions[next(iter(env.versions))]
    return capture_summary(env.capture_dir, served[0].bundle.root)


def capture_summary(folder: Path, baseline: Path) -> str:
    files = sorted(folder.rglob("*.gz")) if folder.is_dir() else []
    if not files:
        return f"no capture objects were delivered into {folder}"
    return (
        f"captured requests: {len(files)} file(s) under {folder}\n"
        f"next: python -m modelrail drift --baseline {baseline} --capture {folder} --png drift.png"
    )


def rollout_next(outcome: str, baseline: str, candidate: str, env: str) -> str:
    """The next command after a rehearsed rollout of the user's own candidate."""
    if outcome == "promoted":
        return (
            f'next: deploy it: in cdk.json point the model\'s entry {{"bundle": "{baseline}"}} at "{candidate}", then '
            f"npx aws-cdk@2 deploy modelrail-{env}"
        )
    if outcome == "inconclusive":
        return (
            f"next: rehearse again with more traffic (--rate) so the candidate's own requests reach an alarm period: "
            f"python -m modelrail rehearse --baseline {baseline} --candidate {candidate} --rate 80"
        )
    check = f"python -m modelrail validate {candidate} --against {baseline}"
    return f"next: see why above, fix the candidate, and check it: {check}"
