"""``make mutate``: mutation testing (mutmut) of the safety-critical modules against the fast test tiers.

Each group mutates the decision paths of a few modules (the functions named in GROUPS; ``--all``: every function,
hours) and runs only the unit and functional tests written for them; within a group mutmut runs, for each mutant,
only the tests that called the mutated function. Prints every surviving mutant with its diff, and the score per
module. The rehearsal controller has no fast tests (the rehearsal's own drive it, end to end): ``--slow`` adds it.
Not in CI: see the README's "Development" section for how long it takes.

    python tools/mutate.py [--group NAME ...] [--max-children N] [--slow] [--all]

mutmut reads its configuration from the working directory and writes its mutated copy of the tree to mutants/
there, so each group runs in a directory of its own under .mutate/ (git-ignored) whose code folders are links to
the project's; mutmut copies them, following the symlinked catalog.py files of functions/*/ as plain files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER_VARIABLE = "MUTATE_TEST_ORDER"  # read by tests/mutation_order.py
WORK = ROOT / ".mutate"
CODE = ("functions", "spec", "modelrail", "models", "bench", "tests")  # bench: the ranged-fetch tests build its model


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    """pytest's arguments; its test files in the order a mutant's tests run (tests/mutation_order.py): the ones that
    kill the most mutants soonest first."""
    functions: tuple[str, ...] = ()
    """mutmut names (module.x_function, module.xǁClassǁmethod) of the functions mutated; none: every function.
    The decision paths only, where the tests that judge them are functional (a few seconds each under mutation)."""
    slow: bool = False  # only with --slow: its tests are the rehearsal's own, end to end


def _in(module: str, *names: str) -> tuple[str, ...]:
    dotted = module.removesuffix(".py").replace("/", ".")
    return tuple(f"{dotted}.x{'ǁ'.join(('', *n.split('.'))) if '.' in n else '_' + n}__mutmut_*" for n in names)


GROUPS = {
    "alarm evaluation": Group(
        ("spec/alarms.py", "modelrail/rehearsal/alarms.py"),
        (
            "tests/unit/test_alarm_evaluation.py",
            "tests/unit/test_alarm_window.py",
            "tests/unit/test_alarm_rules.py",
            "tests/unit/test_rehearsal_verdict.py",
        ),
        _in("spec/alarms.py", "delivery_delay_s", "MetricQuery.dimensions")
        + _in("spec/alarms.py", *(f"AlarmDefinition.{n}" for n in ("expression", "value", "breaches", "state")))
        + _in("spec/alarms.py", "AlarmDefinition.seconds_to_alarm", "AlarmThresholds.definitions")
        + ("modelrail.rehearsal.alarms.*",),
    ),
    "metric emission": Group(
        ("functions/inference/service.py", "functions/inference/handler.py"),
        ("tests/functional/test_metric_records.py",),
        _in("functions/inference/service.py", "_kind_of")
        + _in("functions/inference/handler.py", "_add", "_record", "lambda_handler", "_stamp"),
    ),
    "hooks": Group(
        tuple(f"functions/acceptance/{name}.py" for name in ("posttraffic", "pretraffic", "gate", "codedeploy")),
        (
            "tests/unit/test_gate_decisions.py",  # the gate's rules and the pre-traffic hook, on toy versions
            "tests/functional/test_post_traffic_shift.py",
            "tests/functional/test_acceptance.py",
            "tests/functional/test_hook_faults.py",
        ),
        _in("functions/acceptance/posttraffic.py", "handler", "check_alias")
        + _in("functions/acceptance/codedeploy.py", "report", "check_target_version")
        + _in(
            "functions/acceptance/pretraffic.py",
            "handler",
            "run_gate",
            "_current_version",
            "_replay_records",
            "_acceptance_cases",
        )
        + _in(
            "functions/acceptance/gate.py",
            "evaluate",
            "score_cases",
            "outputs_match",
            "signature_differences",
            "output_differences",
            "output_kind",
            "parse_cases",
            "Verdict.failing",  # not Verdict.passed: mutmut leaves decorated functions (a property) alone
        ),
    ),
    "protocol decoding": Group(
        ("functions/inference/protocol.py",),
        (
            "tests/unit/test_protocol_decoding.py",  # the decoders called directly at their edges (5 s in all)
            "tests/functional/test_inference_api.py",
            "tests/functional/test_hostile_input.py",
            "tests/functional/test_integer_bounds.py",
            "-k",
            "not peak_memory",  # a 1 MB request per shape under tracemalloc: seconds a mutant, and no decoding rule
        ),
        _in("functions/inference/protocol.py", "to_array", "from_binary"),
    ),
    "artifact store": Group(
        ("functions/inference/store.py",),
        (
            "tests/functional/test_ranged_fetch.py",  # the concurrent ranged GETs, digest in order, a corrupted range
            "tests/functional/test_model_store.py",
            "tests/functional/test_cold_start_faults.py",  # streams broken mid-download, retries, whitespace digests
            "tests/functional/test_prefetch.py",  # moto's server over HTTP: the slowest, last
            "-m",
            "not large_model",  # the 46 MB model's fetches (seconds a mutant); their 300 kB twins judge the same code
        ),
        _in(
            "functions/inference/store.py",
            "ModelStore.fetch",
            "ModelStore._store_verified",
            "ModelStore._get_range",
            "_unreachable",
            "_total_size",
            "_parts",
        ),
    ),
    "drift statistics": Group(
        ("functions/monitor/stats.py",),
        ("tests/unit/test_drift_stats.py",),
        _in(
            "functions/monitor/stats.py",
            "psi",
            "prediction_divergence",
            "_compare_numeric",
            "_compare_categorical",
            "_bin_index",
        ),
    ),
    "rehearsal controller": Group(
        ("modelrail/rehearsal/controller.py",),
        ("tests/e2e/test_rehearsal.py", "-k", "rolls_back or promotes or blocks or partly"),
        _in("modelrail/rehearsal/controller.py", "DeploymentController.run", "DeploymentController._watch_until"),
        slow=True,
    ),
}

# Lines whose only effect is text for people (alarm descriptions, log messages): mutating them changes no behaviour
# a rollout depends on, and would bury the mutants that do.
TEXT_ONLY = [r"^\s*description=", r"logger\.(debug|info|warning|error|exception)\("]

KILLED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}
NOT_KILLED = {0: "survived", 5: "no tests", 33: "no tests"}


def slug(name: str) -> str:
    return name.replace(" ", "-")


def prepare(name: str, group: Group) -> Path:
    """A directory where mutmut sees the project and this group's configuration, and nothing else of ours."""
    where = WORK / slug(name)
    where.mkdir(parents=True, exist_ok=True)
    for folder in CODE:
        link = where / folder
        if not link.is_symlink():
            link.symlink_to(ROOT / folder, target_is_directory=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    config = {
        "source_paths": ["functions", "spec", "modelrail"],
        "only_mutate": list(group.modules),
        "also_copy": ["models", "bench"],
        "pytest_add_cli_args_test_selection": list(group.tests),
        "do_not_mutate_patterns": TEXT_ONLY,
    }
    config["pytest_add_cli_args"] = ["-p", "tests.mutation_order"]
    # pytest's own settings (pythonpath, markers, warnings) as the project has them, then mutmut's.
    text = (ROOT / "pyproject.toml").read_text()
    text += "\n[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in config.items())
    assert "mutmut" not in project.get("tool", {}), "pyproject.toml has its own [tool.mutmut]: merge it here"
    pyproject = where / "pyproject.toml"
    if not pyproject.exists() or pyproject.read_text() != text:
        pyproject.write_text(text)
        shutil.rmtree(where / "mutants", ignore_errors=True)  # another configuration: start afresh
    return where


def run(name: str, group: Group, max_children: int, every_function: bool = False) -> dict[str, Counter[str]]:
    functions = () if every_function else group.functions
    where = prepare(name, group)
    # mutmut skips mutants whose function did not change since its last run there; the tests may have: start afresh.
    shutil.rmtree(where / "mutants", ignore_errors=True)
    started = time.monotonic()
    scope = ", ".join(f.rpartition(".")[2].removesuffix("__mutmut_*") for f in functions) or "every function"
    print(f"== {name}: {', '.join(group.modules)} ({scope}) against {' '.join(group.tests)}", flush=True)
    log = where / "mutmut.log"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *functions],
            cwd=where,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", ORDER_VARIABLE: " ".join(group.tests)},
            check=False,
        )
    if done.returncode != 0:
        print(f"mutmut failed ({done.returncode}); its output: {log}", flush=True)
    results: dict[str, Counter[str]] = {}
    survivors = []
    for module in group.modules:
        meta = where / "mutants" / f"{module}.meta"
        counts: Counter[str] = Counter()
        if meta.is_file():
            for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                if code is None:  # not among the functions this group mutates
                    continue
                status = KILLED.get(code) or NOT_KILLED.get(code) or f"exit {code}"
                counts[status] += 1
                if code in NOT_KILLED:
                    survivors.append((key, status))
        if counts:  # a module none of whose mutated functions is in this group's scope says nothing
            results[module] = counts
    for key, status in survivors:
        shown = subprocess.run(
            [sys.executable, "-m", "mutmut", "show", key], cwd=where, capture_output=True, text=True, check=False
        ).stdout
        diff = [line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")]
        print(f"{status.upper()}: {key}")
        for line in diff:
            print(f"    {line}")
    print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    return results


def score(counts: Counter[str]) -> str:
    total = sum(counts.values())
    caught = counts["killed"] + counts["timeout"]
    rest = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if status not in ("killed", "timeout"))
    return f"{caught}/{total} killed ({100 * caught / max(total, 1):.0f}%)" + (f"; {rest}" if rest else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", action="append", choices=sorted(GROUPS), help="only these groups (repeatable)")
    parser.add_argument("--slow", action="store_true", help="also the groups whose tests are end to end")
    parser.add_argument("--all", action="store_true", help="every function of the modules, not only the decision paths")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    args = parser.parse_args()
    started = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    scores: dict[str, Counter[str]] = {}
    for name in args.group or [name for name, group in GROUPS.items() if args.slow or not group.slow]:
        scores |= run(name, GROUPS[name], args.max_children, args.all)
    print(f"\nmutation score per module (commit {commit.strip()}{' with local changes' if dirty else ''}):")
    for module, counts in scores.items():
        print(f"  {module:40} {score(counts)}")
    print(f"{time.monotonic() - started:.0f} s with {args.max_children} mutants at a time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
