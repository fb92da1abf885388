"""``python -m bench [--quick]``: warm and cold latency of the inference function against raw onnxruntime.

One embedded AWS (moto's server on loopback) holds the artifacts, uploaded as a deployment would, and the
functions fetch them over HTTPS, as on Lambda (bench/https_s3.py); every measured function runs in a process of
its own with a Lambda-like environment, because the handler module loads one model per process at import.
Prints a table and writes ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trustme

from bench import host, report
from bench.cold import MARKER
from bench.https_s3 import HttpsS3, bundle_with
from bench.models import IRIS_BUNDLE, LARGE_MLP_LAYERS, ROOT, WORK, Case, build_mlp, v2_request
from bench.stats import median

CASES = (
    Case("iris, 1 row", "iris", "float_input", rows=1, features=4, iterations=2000, warmup=200),
    Case("mlp, 1 row", "mlp", "input", rows=1, features=784, iterations=2000, warmup=200),
    Case("mlp, 256 rows", "mlp", "input", rows=256, features=784, iterations=200, warmup=20),  # noisy: more samples
)
# Cold starts only: the 46 MB model, whose artifact is fetched as concurrent ranged GETs (its fetch throughput).
LARGE = Case("mlp-large, 1 row", "mlp-large", "input", rows=1, features=784, iterations=0, warmup=0)
COLD_RUNS = 7
# A Lambda execution environment's variables come from the function, the runtime and (here) the local AWS;
# none may leak in from the shell that runs the benchmark: neither AWS's and Powertools' nor any the catalog lists.
_FOREIGN_PREFIXES = ("AWS_", "POWERTOOLS_")


def lambda_environment(aws_env: dict[str, str], function_env: dict[str, str], cache_dir: Path) -> dict[str, str]:
    """As the local environment builds it (a fresh cache dir: the artifact is fetched and verified again), plus
    the shell's own PATH and friends."""
    from modelrail.local.environment import execution_environment
    from spec.catalog import ENV_VARS

    ours = {v.name for v in ENV_VARS}
    base = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES) and k not in ours}
    return {**base, **execution_environment(aws_env, function_env, version="1", cache_dir=cache_dir)}


class Deployment:
    """The bundles uploaded to the embedded S3, and fresh per-process environments for their functions."""

    def __init__(self, aws: Any, bundles: dict[str, Any], s3_env: dict[str, str] | None = None) -> None:
        """``s3_env``: where the functions reach S3 instead of ``aws``'s own endpoint (an HTTPS one, see main)."""
        from modelrail.local.aws import ARTIFACT_BUCKET
        from spec.models import DeployedModel

        self.aws_env = {**aws.environment(), **(s3_env or {})}
        self.bundles = bundles
        self.function_envs: dict[str, dict[str, str]] = {}
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        for name, bundle in bundles.items():
            model = DeployedModel.of_bundle(bundle)
            s3.upload_file(str(bundle.model_path), ARTIFACT_BUCKET, model.artifact_key)
            self.function_envs[name] = model.environment(f"s3://{ARTIFACT_BUCKET}/{model.artifact_key}")
        self._fresh = 0

    def environment(self, model: str) -> dict[str, str]:
        self._fresh += 1
        cache = WORK / "cache" / f"{model}-{self._fresh}"
        return lambda_environment(self.aws_env, self.function_envs[model], cache)


def _python(python: str, module: str, *args: str) -> list[str]:
    return [python, "-m", module, *args]


def run_warm(deployment: Deployment, case: Case, python: str) -> dict[str, Any]:
    slug = case.label.replace(", ", "-").replace(" ", "")
    spec_path, out_path, log_path = (WORK / f"warm-{slug}.{ext}" for ext in ("spec.json", "json", "log"))
    model_path = deployment.bundles[case.model].model_path
    spec_path.write_text(json.dumps({"case": asdict(case), "model_path": str(model_path)}))
    with log_path.open("w") as log:  # the handler's structured logs and EMF metrics, as CloudWatch would get
        done = subprocess.run(
            _python(python, "bench.warm", str(spec_path), str(out_path)),
            env=deployment.environment(case.model),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"warm benchmark '{case.label}' failed (log: {log_path}):\n{done.stderr}")
    return json.loads(out_path.read_text())


def cold_once(command: list[str], env: dict[str, str], log_path: Path) -> dict[str, Any]:
    """Spawn one fresh process; wall time from Popen to its result line, and its checkpoints on our timeline."""
    with log_path.open("a") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        assert process.stdout is not None
        result: dict[str, Any] | None = None
        for line in process.stdout:
            if line.startswith(MARKER):
                answered = time.perf_counter()
                result = json.loads(line[len(MARKER) :])
                break
            log.write(line)
        process.communicate()
    if result is None or result.get("status") != 200:
        raise SystemExit(f"cold start {command[-2:]} gave no answer (log: {log_path}): {result}")
    marks = result["marks"]
    phases = {"interpreter": (marks["start"] - started) * 1000}
    names = list(marks)
    for before, after in itertools.pairwise(names):
        phases[after] = (marks[after] - marks[before]) * 1000
    # The handler's module import holds its whole cold start; split out what the child timed inside it.
    inner = result.get("phases", {})
    if "handler_init" in phases:
        phases["handler_init"] -= sum(inner.values())
        phases = {**{k: v for k, v in phases.items() if k != "answer"}, **inner, "answer": phases["answer"]}
    return {"total_ms": (answered - started) * 1000, "phases_ms": phases, "fetch": result.get("fetch") or {}}


def run_cold(deployment: Deployment, models: list[str], runs: int, python: str) -> dict[str, Any]:
    """``runs`` measured rounds (after one unmeasured round), handler and floor alternating first."""
    from functions.acceptance.events import rest_proxy_event

    inputs: dict[str, dict[str, str]] = {}
    for model in models:
        case = next(c for c in (*CASES, LARGE) if c.model == model and c.rows == 1)
        tensor = case.tensor()
        headers = {"accept": "application/json", "content-type": "application/json", "host": "bench.local"}
        event = rest_proxy_event("POST", f"/v2/models/{model}/infer", headers, v2_request(case, tensor))
        event_path, floor_path = WORK / f"cold-{model}-event.json", WORK / f"cold-{model}-floor.json"
        event_path.write_text(json.dumps(event))
        floor_spec = {
            "model_path": str(deployment.bundles[model].model_path),
            "input_name": case.input_name,
            "row": tensor.ravel().tolist(),
        }
        floor_path.write_text(json.dumps(floor_spec))
        inputs[model] = {"handler": str(event_path), "floor": str(floor_path)}

    samples: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"handler": [], "floor": []} for m in models}
    log_path = WORK / "cold.log"
    log_path.write_text("")
    for round_ in range(runs + 1):
        for model in models:
            order = ("handler", "floor") if round_ % 2 == 0 else ("floor", "handler")
            for kind in order:
                env = deployment.environment(model)
                run = cold_once(_python(python, "bench.cold", kind, inputs[model][kind]), env, log_path)
                if round_ > 0:  # round 0 warms the page cache and writes bytecode
                    samples[model][kind].append(run)
    return {model: {kind: _cold_summary(runs_) for kind, runs_ in kinds.items()} for model, kinds in samples.items()}


def _cold_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    totals = [r["total_ms"] for r in runs]
    phase_names = list(runs[0]["phases_ms"])
    fetched = [r["fetch"] for r in runs if r.get("fetch")]
    fetch = {}
    if fetched:  # the handler's artifact download from the embedded S3, into a fresh cache dir each run
        fetch = {
            "bytes": fetched[0]["bytes"],
            "gets": fetched[0]["gets"],
            "median_ms": round(median([f["seconds"] * 1000 for f in fetched]), 1),
            "median_sha256_ms": round(median([f.get("sha256_ms", 0.0) for f in fetched]), 1),
            "median_mb_per_s": round(median([f["bytes"] / f["seconds"] / 1e6 for f in fetched]), 3),
        }
    return {
        **({"fetch": fetch} if fetch else {}),
        "runs": len(runs),
        "median_ms": round(median(totals), 1),
        "min_ms": round(min(totals), 1),
        "max_ms": round(max(totals), 1),
        "all_ms": [round(t, 1) for t in totals],
        "phases_median_ms": {p: round(median([r["phases_ms"].get(p, 0.0) for r in runs]), 1) for p in phase_names},
    }


def machine(python: str) -> dict[str, Any]:
    import onnxruntime

    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": version,  # the functions' processes' (warm and cold), what the figures measure
        "harness_python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": __import__("numpy").__version__,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the iterations and 3 cold runs (a smoke run)")
    parser.add_argument(
        "--output", type=Path, help="where to write results (default: bench/results.json; --quick: .work)"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the functions' processes, warm and cold (make bench: CPython 3.12, as on Lambda)",
    )
    args = parser.parse_args(argv)
    if args.output is None:  # a smoke run never overwrites the figures the README quotes
        args.output = WORK / "results-quick.json" if args.quick else ROOT / "bench" / "results.json"

    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        print("note: perf_counter is not system-wide here; cold-start phases are approximate", file=sys.stderr)
    from modelrail.local.aws import EmbeddedAWS
    from spec.bundle import ModelBundle

    shutil.rmtree(WORK / "cache", ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    bundles = {
        "iris": ModelBundle.load(IRIS_BUNDLE),
        "mlp": ModelBundle.load(build_mlp(WORK / "mlp.onnx")),
        "mlp-large": ModelBundle.load(build_mlp(WORK / "mlp-large.onnx", LARGE_MLP_LAYERS)),
    }
    cases = (
        [replace(c, iterations=max(10, c.iterations // 10), warmup=max(2, c.warmup // 10)) for c in CASES]
        if args.quick
        else list(CASES)
    )
    runs = 3 if args.quick else COLD_RUNS

    started = time.perf_counter()
    before = host.sample()
    # The functions fetch their artifacts over HTTPS, as on Lambda: the TLS handshakes, and the parse of a whole CA
    # bundle to verify them, are in their cold starts. The HTTPS server shares moto's backend with the embedded AWS.
    ca = trustme.CA()
    with EmbeddedAWS() as aws, HttpsS3(ca.issue_cert("127.0.0.1")) as https:
        s3_env = {
            "AWS_ENDPOINT_URL_S3": https.endpoint_url,
            "SSL_CERT_FILE": str(bundle_with(ca, WORK / "tls" / "ca-bundle.pem")),
        }
        deployment = Deployment(aws, bundles, s3_env)
        warm = []
        for case in cases:
            print(f"warm: {case.label} ({case.iterations} iterations)...", file=sys.stderr, flush=True)
            warm.append(run_warm(deployment, case, args.python))
        print(f"cold: iris, mlp, mlp-large, {runs} runs each of handler and floor...", file=sys.stderr, flush=True)
        cold = run_cold(deployment, ["iris", "mlp", "mlp-large"], runs, args.python)
    shutil.rmtree(WORK / "cache", ignore_errors=True)

    results = report.assemble(machine(args.python), warm, cold, quick=args.quick)
    results["machine"]["contention"] = host.contention(before, host.sample())
    results["duration_s"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    report.show(results)
    print(f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
