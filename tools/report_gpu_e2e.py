"""Turn tools/gpu_e2e.py's results.json into tables per model, and a chart where matplotlib imports.

    python tools/report_gpu_e2e.py RESULTS.json [--before OLD.json]   writes RESULTS.md (and .png) beside it

--before: the results of tools/gpu_e2e.py as it was before it ran each model in containers of its
own (say tools/results/gpu_e2e.json): the acceptance compares the first step with its `cli-full`.
Every figure is the median of a phase's runs (failed runs left out, and counted), but benchmark
calls: the most any run made.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

PHASES = (
    "cold",
    "megacache",
    "cli-full",
    "cli-quiet",
    "cli-safe",
    "atpack-full",
    "atpack-safe",
    "hot",
    "cli-foreign",
    "cli-hints",
)
CACHES = ("aot_autograd", "fx_graph", "autotune", "gemm", "triton_autotune", "triton_kernel")  # atpack.lookups.CACHES
TITLES = {
    "gpt2": "GPT-2, training",
    "resnet18": "ResNet-18, inference",
    "mlp": "MLP, inference",
    "block": "transformer block, training",
    "kernel": "`@triton.autotune` kernel",
}
COLORS = {
    "cold": "#999",
    "megacache": "#c66",
    "cli-full": "#856",
    "cli-quiet": "#a78",
    "cli-safe": "#b9a",
    "atpack-full": "#393",
    "atpack-safe": "#6a6",
    "hot": "#69c",
}
# The bounds, for the `cli-full` phase (populate --trust-pickles, then the training process).
POPULATE_MAX_S, VS_HOT_MAX, VS_MEGACACHE_MAX = 1.0, 1.0, 0.7


def runs(entry: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    """A model's runs of a phase that finished."""
    done = [entry["cold"]] if phase == "cold" and "cold" in entry else entry["runs"].get(phase, [])
    return [r for r in done if "error" not in r]


def failed(entry: dict[str, Any], phase: str) -> int:
    done = [entry["cold"]] if phase == "cold" and "cold" in entry else entry["runs"].get(phase, [])
    return sum("error" in r for r in done)


def median(done: list[dict[str, Any]], value: Callable[[dict[str, Any]], float | None]) -> float | None:
    """The median of `value` over the runs that have one."""
    values = [v for v in map(value, done) if v is not None]
    return float(statistics.median(values)) if values else None


def start_s(entry: dict[str, Any], phase: str) -> float | None:
    """The container's start cost: populate (cli-*) and the training process to its first step's end."""
    return median(runs(entry, phase), lambda r: r["start_s"])


def bench(done: list[dict[str, Any]]) -> tuple[int, int]:
    """Benchmark calls (tuning, coordinate descent) of the run that made the most."""
    counts = [r["benchmarks"] for r in done]
    return (
        max((b["autotune"] + b["other"] + b["triton_autotune"] for b in counts), default=0),
        max((b["coordesc"] for b in counts), default=0),
    )


def seconds(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.2f}" if t >= 0.1 else f"{t * 1000:.1f} ms"


def with_unit(t: float | None) -> str:
    text = seconds(t)
    return text if text.endswith("ms") or text == "-" else f"{text} s"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def model_table(entry: dict[str, Any]) -> list[str]:
    """One row per phase: the start's parts and sum, against hot and Megacache, the first step, the exit."""
    hot, megacache = start_s(entry, "hot"), start_s(entry, "megacache")
    lines = [
        "| phase | runs | populate s | to first step's end s | start s | vs hot | vs Megacache "
        "| first step s | steady step ms | to exit s | benchmark calls |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in PHASES:
        done = runs(entry, phase)
        if not done:
            continue
        start = start_s(entry, phase)
        tuned, coordesc = bench(done)
        bad = failed(entry, phase)
        cells = [
            f"{len(done)}" + (f" ({bad} failed)" if bad else ""),
            seconds(median(done, lambda r: r["populate_s"]) if "populate_s" in done[0] else None),
            seconds(median(done, lambda r: r["train_first_step_s"])),
            seconds(start),
            ratio(start, hot) if phase != "cold" else "-",
            ratio(start, megacache) if phase != "cold" else "-",
            seconds(median(done, lambda r: r["first_step_s"])),
            _f(median(done, lambda r: r["steady_step_s"] * 1000 if "steady_step_s" in r else None)),
            seconds(median(done, lambda r: r["train_exit_s"])),
            f"{tuned} + {coordesc}",
        ]
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    return lines


def sizes(entry: dict[str, Any]) -> str:
    cold = entry.get("cold", {})
    if "pack" not in cold:
        return "No pack: the cold run failed or did not run."
    pack, blob = cold["pack"]["pack_bytes"], cold["save"]["megacache_bytes"]
    kinds = ", ".join(f"{n} {k}" for k, n in cold["pack"]["kinds"].items())
    return (
        f"Pack {pack:,} bytes; Megacache blob {blob:,} bytes ({ratio(blob, pack)} the pack). "
        f"The pack holds {kinds or 'nothing'}."
    )


def acceptance(r: dict[str, Any], before: dict[str, float]) -> list[str]:
    """The issue's bounds for `cli-full`, model by model."""
    lines = [
        f"| model | runs | populate <= {POPULATE_MAX_S} s | start <= {VS_HOT_MAX}x hot "
        f"| start <= {VS_MEGACACHE_MAX}x Megacache | benchmark calls, every run | first step (before) |",
        "|---|---:|---|---|---|---|---|",
    ]
    for model, entry in r["models"].items():
        done = runs(entry, "cli-full")
        if not done:
            continue
        populate = median(done, lambda x: x["populate_s"])
        start, hot, megacache = start_s(entry, "cli-full"), start_s(entry, "hot"), start_s(entry, "megacache")
        calls = [sum(x["benchmarks"].values()) for x in done]
        step = median(done, lambda x: x["first_step_s"])
        was = before.get(model)
        cells = [
            str(len(done)),
            _verdict(with_unit(populate), populate is not None and populate <= POPULATE_MAX_S),
            _verdict(ratio(start, hot), hot is not None and start is not None and start <= VS_HOT_MAX * hot),
            _verdict(
                ratio(start, megacache),
                megacache is not None and start is not None and start <= VS_MEGACACHE_MAX * megacache,
            ),
            _verdict(", ".join(map(str, calls)), not any(calls)),
            with_unit(step) + (f" ({with_unit(was)}: {ratio(step, was)})" if was else ""),
        ]
        lines.append(f"| {TITLES.get(model, model)} | " + " | ".join(cells) + " |")
    return lines


def _verdict(value: str, ok: bool) -> str:
    return f"{value} **{'yes' if ok else 'no'}**"


def start_table(r: dict[str, Any]) -> list[str]:
    """Where spawn to the first step's end went, stage by stage."""
    stages = ("interpreter_s", "import_torch_s", "counting_s", "load_s", "triton_s", "build_s", "first_step_s")
    lines = [
        "| model | phase | interpreter | import torch | counters | load | Triton | model built | first step |",
        "|---|---|" + "---:|" * len(stages),
    ]
    for model, entry in r["models"].items():
        for phase in PHASES:
            done = runs(entry, phase)
            if done:
                cells = [seconds(median(done, lambda x, s=s: x["start"].get(s))) for s in stages]  # type: ignore[misc]
                lines.append(f"| {model} | {phase} | " + " | ".join(cells) + " |")
    return lines


def exit_table(r: dict[str, Any]) -> list[str]:
    """Where the first step's end to the process's exit went."""
    parts = ("after_step_s", "work_s", "threads_s", "atexit_s", "teardown_s")
    lines = [
        "| model | phase | first step's end to exit | its own work | threads joined | atexit handlers "
        "| slowest handler | teardown | alive then: threads, processes |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for model, entry in r["models"].items():
        for phase in PHASES:
            done = runs(entry, phase)
            if done:
                cells = [seconds(median(done, lambda x, p=p: x["exit"].get(p))) for p in parts]  # type: ignore[misc]
                cells.insert(4, _slowest_handler(done))
                alive = [median(done, lambda x, k=k: x["exit"].get(k)) for k in ("native_threads", "child_processes")]
                cells.append(", ".join("-" if n is None else f"{n:.0f}" for n in alive))
                lines.append(f"| {model} | {phase} | " + " | ".join(cells) + " |")
    return lines


def _slowest_handler(done: list[dict[str, Any]]) -> str:
    """The atexit handler with the longest median time over the runs, and that median."""
    times: dict[str, list[float]] = {}
    for x in done:
        for name, t in x["exit"]["slowest_atexit"]:
            times.setdefault(name, []).append(t)
    if not times:
        return "-"
    name, values = max(times.items(), key=lambda kv: statistics.median(kv[1]))
    return f"`{name}` {seconds(statistics.median(values))}"


def old_first_steps(path: Path) -> dict[str, float]:
    """The median cli-full first step per model of tools/gpu_e2e.py's earlier results format."""
    old = json.loads(path.read_text())
    first = old.get("phases", {}).get("cli-full")
    if first is None:
        return {}
    done = [x for x in [first, *first.get("repeats", [])] if "models" in x]
    models = done[0]["models"] if done else {}
    return {m: float(statistics.median(x["models"][m]["first_step_s"] for x in done)) for m in models}


def chart(r: dict[str, Any], path: Path) -> bool:
    """Each model's start per phase: populate and the training process to its first step's end."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m, e in r["models"].items() if runs(e, "hot") or runs(e, "megacache")]
    if not models:
        return False
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        entry = r["models"][model]
        phases = [p for p in PHASES if p != "cold" and runs(entry, p)]
        train = [median(runs(entry, p), lambda x: x["train_first_step_s"]) or 0.0 for p in phases]
        populate = [median(runs(entry, p), lambda x: x.get("populate_s", 0.0)) or 0.0 for p in phases]
        ax.bar(phases, populate, color="#ddd", label="populate")
        ax.bar(phases, train, bottom=populate, color=[COLORS[p] for p in phases], label="to first step's end")
        ax.set_title(TITLES.get(model, model).replace("`", ""))
        ax.set_ylabel("start, s (median)")
        ax.tick_params(axis="x", rotation=40)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"A container's start: {r['machine'].get('device', 'CPU')}, torch {r['machine'].get('torch')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def report(r: dict[str, Any], before: dict[str, float]) -> list[str]:
    machine = r["machine"]
    lines = [
        "# A container's warm start on a GPU",
        "",
        f"`{r['command']}` on {machine.get('device', 'the CPU (--smoke)')}, torch {machine.get('torch')}, "
        f"triton {machine.get('triton')}, Python {machine.get('python')}. Each run a fresh container (a new "
        "machine folder, HOME and the temp folder in it, no cache folder variable set, nothing carried "
        "from an earlier run), but `hot`, which gets the cold run's folder back; "
        + ("each phase's folder at a path of its own" if r["settings"]["paths"] == "per-phase" else "all at one path")
        + ". `start`: `atpack populate`'s process from spawn to exit (cli-*), plus the training process from "
        "spawn to its first step's end; `vs`: ratios of medians. Medians of the runs; benchmark calls "
        "(tuning + coordinate descent, counted at the source): the most any run made.",
        "",
    ]
    for model, entry in r["models"].items():
        lines += [f"## {TITLES.get(model, model)}", ""]
        if "skipped" in entry:
            lines += [f"Skipped: {entry['skipped']}.", ""]
            continue
        if entry.get("ran", "as described") != "as described":
            lines += [f"Ran as {entry['ran']}.", ""]
        lines += [*model_table(entry), "", sizes(entry), ""]
    lines += ["## The issue's bounds (`cli-full`)", "", *acceptance(r, before), ""]
    if any(runs(entry, "cli-hints") for entry in r["models"].values()):
        lines += ["## Another GPU's pack, as hints (`cli-hints`)", "", *hints_table(r), ""]
    lines += ["## Cache lookups, explained (`atpack explain` after each run)", "", *explain_table(r), ""]
    lines += ["## Where the start went (spawn to the first step's end, s)", "", *start_table(r), ""]
    lines += ["## Where the exit went (the first step's end to the process's exit, s)", "", *exit_table(r), ""]
    if r.get("left"):
        lines += [f"Not run (budget): {', '.join(r['left'])}.", ""]
    return lines


def hints_table(r: dict[str, Any]) -> list[str]:
    """Issue 24's bounds: another GPU's pack with hints against this GPU's cold run and own pack
    (cli-full): benchmark calls (the most any run made), first step and steady step (medians)."""
    lines = [
        "| model | hinted | benchmark calls vs cold (<= 20%) | first step vs cold (<= 0.3x) "
        "| steady step vs own pack (<= 1.03x) | today's populate (cli-foreign): calls, first step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, entry in r["models"].items():
        hinted, cold, own, foreign = (runs(entry, p) for p in ("cli-hints", "cold", "cli-full", "cli-foreign"))
        if not hinted or not cold:
            continue
        calls, cold_calls = sum(bench(hinted)), sum(bench(cold))
        share = calls / cold_calls if cold_calls else None
        first = ratio(median(hinted, lambda x: x["first_step_s"]), median(cold, lambda x: x["first_step_s"]))
        steady = ratio(*(median(d, lambda x: x.get("steady_step_s")) for d in (hinted, own)))
        today = f"{sum(bench(foreign))}, {seconds(median(foreign, lambda x: x['first_step_s']))} s" if foreign else "-"
        n = median(hinted, lambda x: x["populate"]["actions"].get("hinted"))
        lines.append(f"| {model} | {n} | {calls} vs {cold_calls} ({_pct(share)}) | {first} | {steady} | {today} |")
    return lines


def explain_table(r: dict[str, Any]) -> list[str]:
    """Per model and phase: each cache's hits and misses (summed over the runs: hit rate), the
    seconds after misses and benchmark calls (medians), what recording cost against the first
    step, and the first step beside cli-quiet's (the same run, not recording)."""
    lines = [
        "Hits/lookups per cache, summed over the runs; `after misses`: seconds from each miss to its entry's "
        "save, nested caches counted once (AOT autograd's, else the FX graphs', else Triton's compiles; plus "
        "`@triton.autotune` benchmarking), median of the runs; Inductor's `.best_config` misses are paid in "
        "benchmark calls; `recording`: what recording the lookups cost the processes (median), and its share of the "
        "first step; `first step`: median, and against `cli-quiet` (cli-full without --explain).",
        "",
        "| model | phase | " + " | ".join(CACHES) + " | after misses (s) | benchmark calls | recording (s) | "
        "of first step | first step (s) | vs cli-quiet |",
        "|---|---|" + "---:|" * (len(CACHES) + 6),
    ]
    for model, entry in r["models"].items():
        quiet = median(runs(entry, "cli-quiet"), lambda x: x.get("first_step_s"))
        for phase in PHASES:
            done = [x for x in runs(entry, phase) if "caches" in x.get("explain", {})]
            if not done:
                continue
            cells = []
            for cache in CACHES:
                hits = sum(x["explain"]["caches"].get(cache, {}).get("hits", 0) for x in done)
                looked = hits + sum(x["explain"]["caches"].get(cache, {}).get("misses", 0) for x in done)
                cells.append(f"{hits}/{looked} ({hits / looked:.0%})" if looked else "-")
            after = median(done, _after_misses)
            bench = median(done, lambda x: x["explain"]["benchmarks"])
            spent = median(done, lambda x: x["explain"]["spent_s"])
            share = median(
                done, lambda x: x["explain"]["spent_s"] / x["first_step_s"] if x.get("first_step_s") else None
            )
            first = median(done, lambda x: x.get("first_step_s"))
            vs = f"{first / quiet:.3f}x" if first and quiet and phase == "cli-full" else ""
            lines.append(
                f"| {model} | {phase} | " + " | ".join(cells) + f" | {_f(after)} | {_f(bench, 0)} | {_f(spent, 3)} | "
                f"{_pct(share)} | {_f(first)} | {vs} |"
            )
    causes: dict[str, int] = {}
    for entry in r["models"].values():
        for phase in PHASES:
            for x in runs(entry, phase):
                for cause, n in x.get("explain", {}).get("causes", {}).items():
                    causes[f"{phase}: {cause}"] = causes.get(f"{phase}: {cause}", 0) + n
    if causes:
        lines += ["", "Misses by cause (all runs, all models):", ""]
        lines += [f"- {n} x {cause}" for cause, n in sorted(causes.items(), key=lambda kv: -kv[1])[:30]]
    return lines


def _after_misses(run: dict[str, Any]) -> float:
    """The seconds after misses, nested caches counted once: an AOT autograd entry's compile holds
    its graphs', a graph's its kernels'; a `@triton.autotune` kernel's benchmarking stands apart."""
    seconds = {cache: c["seconds"] for cache, c in run["explain"]["caches"].items()}
    graphs = seconds.get("aot_autograd") or seconds.get("fx_graph") or seconds.get("triton_kernel", 0.0)
    return graphs + seconds.get("triton_autotune", 0.0)


def _recording_share(run: dict[str, Any]) -> float | None:
    first = run.get("first_step_s")
    return run["explain"]["spent_s"] / first if first else None


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="gpu_e2e.py's results.json")
    parser.add_argument("--before", type=Path, help="earlier results, for the first step's comparison")
    args = parser.parse_args()
    r = json.loads(args.results.read_text())
    if "models" not in r:
        parser.error(f"{args.results} is in the earlier format (phases, not models): pass it as --before")
    lines = report(r, old_first_steps(args.before) if args.before else {})
    args.results.with_suffix(".md").write_text("\n".join(lines))
    if not chart(r, args.results.with_suffix(".png")):
        lines.append("(no chart: matplotlib is not installed)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
