"""Benchmark figures against the targets of issue 14: assembled into results.json and printed as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# Targets: what the handler may add on top of onnxruntime itself.
ONE_ROW_OVERHEAD_US = 100.0  # handler p50 - raw p50, one-row requests
BATCH_RATIO = 7.0  # handler p50 / raw p50, the 256-row JSON request (a naive stdlib-json handler: ~35x)
BINARY_RATIO = 1.5  # handler p50 / raw p50, the same 256 rows with the binary tensor data extension
COLD_RATIO = 2.0  # fresh process to first answer / the floor (import onnxruntime, session from a file, run once)
COLD_TARGETS = ("iris", "mlp")  # the 46 MB model's cold start is reported (with its fetch), not held to the ratio

# Cold-start phases in the order a process goes through them, with their table headings.
PHASES = {
    "interpreter": "python start",
    "imports": "imports",
    "env": "env check",
    "s3_client": "S3 client",
    "fetch": "fetch+sha256 waited",
    "session": "session",
    "handler_init": "imports + init",
    "answer": "1st answer",
}


def _warm_figures(result: dict[str, Any]) -> dict[str, Any]:
    case, variants = result["case"], result["variants"]
    raw, handler, naive = variants["raw"]["p50_us"], variants["handler"]["p50_us"], variants["naive"]["p50_us"]
    figures: dict[str, Any] = {
        "label": case["label"],
        "model": case["model"],
        "rows": case["rows"],
        "iterations": case["iterations"],
        "request_bytes": result["request_bytes"],
        **variants,
        "overhead_us": round(handler - raw, 1),
        "handler_ratio": round(handler / raw, 2),
        "naive_ratio": round(naive / raw, 2),
    }
    if "protocol" in variants:
        figures["protocol_overhead_us"] = round(variants["protocol"]["p50_us"] - raw, 1)
    if "minimal" in variants:
        figures["minimal_overhead_us"] = round(variants["minimal"]["p50_us"] - raw, 1)
    if "binary" in variants:
        figures["binary_ratio"] = round(variants["binary"]["p50_us"] / raw, 2)
    if result.get("skipped"):
        figures["skipped"] = result["skipped"]
    if case["rows"] == 1:
        figures["target"] = {"figure": "overhead_us", "at_most": ONE_ROW_OVERHEAD_US}
        figures["met"] = figures["overhead_us"] <= ONE_ROW_OVERHEAD_US
    else:
        figures["target"] = {"figure": "handler_ratio", "at_most": BATCH_RATIO}
        figures["met"] = figures["handler_ratio"] <= BATCH_RATIO
        if "binary_ratio" in figures:
            figures["binary_target"] = {"figure": "binary_ratio", "at_most": BINARY_RATIO}
            figures["binary_met"] = figures["binary_ratio"] <= BINARY_RATIO
    return figures


def assemble(
    machine: dict[str, Any], warm: list[dict[str, Any]], cold: dict[str, Any], *, quick: bool = False
) -> dict[str, Any]:
    cold_figures = {}
    for model, kinds in cold.items():
        ratio = kinds["handler"]["median_ms"] / kinds["floor"]["median_ms"]
        targeted = model in COLD_TARGETS
        cold_figures[model] = {
            **kinds,
            "ratio": round(ratio, 2),
            "target": {"figure": "ratio", "at_most": COLD_RATIO} if targeted else None,
            "met": ratio <= COLD_RATIO if targeted else None,
        }
    return {
        "machine": machine,
        "quick": quick,
        "targets": {
            "one_row_overhead_us": ONE_ROW_OVERHEAD_US,
            "batch_256_ratio": BATCH_RATIO,
            "batch_256_binary_ratio": BINARY_RATIO,
            "cold_start_ratio": COLD_RATIO,
        },
        "warm": [_warm_figures(r) for r in warm],
        "cold": cold_figures,
    }


def _verdict(met: bool | None) -> str:
    if met is None:
        return "reported"
    return "[green]met[/]" if met else "[red]missed[/]"


def _us(value: float) -> str:
    return f"{value:,.0f}"


def show(results: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if console.width < 170:  # a pipe or a narrow terminal: keep rows on one line each
            console = Console(width=170)
    m = results["machine"]
    console.print(
        f"\n[bold]modelrail bench[/] {m['date']}  {m['cpus_available']} CPU(s) {m['cpu_model']}  "
        f"Python {m['python']}  onnxruntime {m['onnxruntime']}"
        + ("  [yellow](quick run)[/]" if results["quick"] else "")
    )
    if m.get("contention"):
        console.print(f"shared with: {_contention(m['contention'])}")

    warm = Table(title="Warm: microseconds per request (handler = lambda_handler on an API Gateway event)")
    columns: tuple[str, ...] = (
        "case",
        "raw p50/p99",
        "handler p50/p99",
        "overhead",
        "handler /raw",
        "protocol only",
        "minimal json",
        "naive json",
        "binary req",
    )
    for column in (*columns, "target", ""):
        warm.add_column(column, justify="left" if column == "case" else "right", no_wrap=column != "case")
    for w in results["warm"]:
        target = w["target"]
        goal = f"<={target['at_most']:.0f}us" if target["figure"] == "overhead_us" else f"<={target['at_most']:.0f}x"
        warm.add_row(
            w["label"],
            *(f"{_us(w[v]['p50_us'])} / {_us(w[v]['p99_us'])}" for v in ("raw", "handler")),
            f"+{_us(w['overhead_us'])}",
            f"{w['handler_ratio']:.1f}x",
            _us(w["protocol"]["p50_us"]) if "protocol" in w else "-",
            f"{_us(w['minimal']['p50_us'])} (+{_us(w['minimal_overhead_us'])})" if "minimal" in w else "-",
            f"{_us(w['naive']['p50_us'])} ({w['naive_ratio']:.1f}x)",
            f"{_us(w['binary']['p50_us'])} ({w['binary_ratio']:.1f}x)" if "binary" in w else "-",
            goal,
            _verdict(w["met"]),
        )
    console.print(warm)
    console.print(
        "p50 unless marked; overhead = handler p50 - raw p50; protocol only = decode, check, run, encode without "
        "Powertools; minimal json = orjson in and out around session.run, nothing checked (+ its overhead); "
        "binary req = the handler on the binary tensor data extension; (x) = p50 / raw p50"
    )
    for w in results["warm"]:
        for variant, why in w.get("skipped", {}).items():
            console.print(f"[yellow]{w['label']}: {variant} left out: {why}[/]")

    cold = Table(title="Cold: fresh process to first answer, median of runs (floor = import onnxruntime, session, run)")
    for column in ("model", "floor", "handler", "handler/floor", "artifact fetch", "target", ""):
        cold.add_column(column, justify="left" if column == "model" else "right")
    for model, c in results["cold"].items():
        cold.add_row(
            model,
            f"{c['floor']['median_ms']:.0f} ms",
            f"{c['handler']['median_ms']:.0f} ms",
            f"{c['ratio']:.2f}x",
            _fetch(c["handler"].get("fetch")),
            f"<= {c['target']['at_most']}x" if c["target"] else "-",
            _verdict(c["met"]),
        )
    console.print(cold)

    phases = Table(title="Cold start: where the time goes (median ms per phase)")
    phases.add_column("model / process")
    names: list[str] = []
    for c in results["cold"].values():
        for kind in ("floor", "handler"):
            names += [p for p in c[kind]["phases_median_ms"] if p not in names]
    names.sort(key=lambda p: list(PHASES).index(p) if p in PHASES else len(PHASES))
    for name in names:
        phases.add_column(PHASES.get(name, name), justify="right")
    for model, c in results["cold"].items():
        for kind in ("floor", "handler"):
            got = c[kind]["phases_median_ms"]
            phases.add_row(f"{model} / {kind}", *(f"{got[n]:.0f}" if n in got else "" for n in names))
    console.print(phases)


def _bytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if size >= 100_000 else f"{size / 1e3:,.1f} kB"


def _rate(mb_per_s: float) -> str:
    return f"{mb_per_s:,.0f} MB/s" if mb_per_s >= 10 else f"{mb_per_s:,.2f} MB/s"


def _fetch(fetch: dict[str, Any] | None) -> str:
    if not fetch:
        return "-"
    timing = f"{fetch['median_ms']:,.0f} ms, {_rate(fetch['median_mb_per_s'])}"
    return f"{_bytes(fetch['bytes'])} in {fetch['gets']} GET(s): {timing}"


def _miss(measured: float, limit: float, unit: str) -> str:
    """``met``, or by how much the figure misses: the excess in the figure's own unit (us or ms)."""
    if measured <= limit:
        return "met"
    excess = measured - limit
    return f"**missed** by {excess:,.{0 if excess >= 10 else 2}f} {unit}"


def _contention(c: dict[str, Any]) -> str:
    """What else had the machine during the run (bench/host.py)."""
    return (
        f"other processes {c['others_cpus']:.2f} CPUs, the hypervisor {c['steal_pct']:.1f}% of CPU time (steal), "
        f"load average {c['load_before']:.2f} at the start"
    )


def markdown(results: dict[str, Any]) -> str:
    """The README's figures table for these results (``python -m bench.report``)."""
    m = results["machine"]
    lines = [
        f"Measured {m['date'][:10]} on {m['cpus_available']} vCPUs ({m['cpu_model']}), Python {m['python']}, "
        f"onnxruntime {m['onnxruntime']}; p50 of {', '.join(str(w['iterations']) for w in results['warm'])} "
        "interleaved requests, cold starts median of "
        f"{next(iter(results['cold'].values()))['handler']['runs']} alternating runs."
        + (f" Shared with: {_contention(m['contention'])}." if m.get("contention") else ""),
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
    ]
    for w in results["warm"]:
        raw, handler = w["raw"]["p50_us"], w["handler"]["p50_us"]
        if w["target"]["figure"] == "overhead_us":
            limit = w["target"]["at_most"]
            lines.append(
                f"| {w['label']}: handler p50 - raw p50 | +{w['overhead_us']:,.0f} us "
                f"({handler:,.0f} vs {raw:,.0f} us) | <= {limit:.0f} us | {_miss(w['overhead_us'], limit, 'us')} |"
            )
        else:
            limit = w["target"]["at_most"]
            lines.append(
                f"| {w['label']}: handler p50 / raw p50 (JSON) | {w['handler_ratio']:.1f}x ({handler / 1000:,.1f} vs "
                f"{raw / 1000:,.1f} ms) | <= {limit:.0f}x | {_miss(handler / 1000, raw * limit / 1000, 'ms')} |"
            )
            if "binary_target" in w:
                limit, binary = w["binary_target"]["at_most"], w["binary"]["p50_us"]
                lines.append(
                    f"| {w['label']}: handler p50 / raw p50 (binary tensor extension) | {w['binary_ratio']:.2f}x "
                    f"({binary / 1000:,.1f} vs {raw / 1000:,.1f} ms) | <= {limit}x | "
                    f"{_miss(binary / 1000, raw * limit / 1000, 'ms')} |"
                )
    for model, c in results["cold"].items():
        handler, floor = c["handler"]["median_ms"], c["floor"]["median_ms"]
        measured = f"{c['ratio']:.2f}x ({handler:,.0f} vs {floor:,.0f} ms)"
        if c["target"] is None:
            lines.append(f"| cold start, {model}: handler / floor | {measured} | reported | |")
            continue
        limit = c["target"]["at_most"]
        verdict = _miss(handler, floor * limit, "ms")
        lines.append(f"| cold start, {model}: handler / floor | {measured} | <= {limit}x | {verdict} |")
    fetched = {model: c["handler"]["fetch"] for model, c in results["cold"].items() if c["handler"].get("fetch")}
    if fetched:
        lines += ["", "Artifact fetch in the handler's cold start (embedded S3 over HTTPS on loopback, median):", ""]
        lines += ["| model | artifact | GETs | fetch + sha256 | of which sha256 | throughput |"]
        lines += ["|---|---|---|---|---|---|"]
        for model, f in fetched.items():
            lines.append(
                f"| {model} | {_bytes(f['bytes'])} | {f['gets']} | {f['median_ms']:,.0f} ms | "
                f"{f.get('median_sha256_ms', 0):,.0f} ms | {_rate(f['median_mb_per_s'])} |"
            )
    lines += ["", "For reference, p50 in the same run:", ""]
    lines += ["| case | raw | handler | protocol only | minimal json | naive json |"]
    lines[-1] += " binary req |" if any("binary" in w for w in results["warm"]) else ""
    lines.append("|---" * (lines[-1].count("|") - 1) + "|")
    for w in results["warm"]:
        cells = [w["label"], *(f"{w[v]['p50_us']:,.0f} us" if v in w else "-" for v in ("raw", "handler", "protocol"))]
        minimal = w.get("minimal")
        cells.append(f"{minimal['p50_us']:,.0f} us (+{w['minimal_overhead_us']:,.0f})" if minimal else "-")
        cells.append(f"{w['naive']['p50_us']:,.0f} us ({w['naive_ratio']:.1f}x raw)")
        if "binary" in w:
            cells.append(f"{w['binary']['p50_us']:,.0f} us ({w['binary_ratio']:.1f}x raw)")
        lines.append("| " + " | ".join(cells) + " |")
    phases = {}
    for model, c in results["cold"].items():
        for kind in ("floor", "handler"):
            phases[f"{model} {kind}"] = c[kind]["phases_median_ms"]
    names = [p for p in PHASES if any(p in got for got in phases.values())]
    lines += ["", "Cold start by phase (median ms):", ""]
    lines.append("| process | " + " | ".join(PHASES[n] for n in names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for process, got in phases.items():
        lines.append(f"| {process} | " + " | ".join(f"{got[n]:,.0f}" if n in got else "" for n in names) + " |")
    return "\n".join(lines)


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    """Replace the figures between the README's bench markers (inside its Benchmarks section) with these."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} markers in its Benchmarks section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}")


if __name__ == "__main__":
    import argparse
    import json

    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(prog="python -m bench.report", description="results.json as README tables")
    parser.add_argument("results", nargs="?", type=Path, default=root / "bench" / "results.json")
    parser.add_argument("--readme", action="store_true", help="write them into README.md's Benchmarks section")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    if args.readme:
        update_readme(root / "README.md", results)
    else:
        print(markdown(results))
