"""Turn tools/results/gpu_e2e.json (from tools/gpu_e2e.py) into a chart and a summary table.

    python tools/report_gpu_e2e.py [RESULTS.json]     writes gpu_e2e.png and gpu_e2e.md beside it
Needs matplotlib (not an atpack dependency).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

PHASES = ("cold", "megacache", "atpack-safe", "atpack-full", "cli-safe", "cli-full", "hot")
COLORS = {
    "cold": "#999",
    "megacache": "#c66",
    "atpack-safe": "#6a6",
    "atpack-full": "#393",
    "cli-safe": "#b9a",
    "cli-full": "#856",
    "hot": "#69c",
}
MODELS = {"mlp": "MLP, inference", "block": "transformer block, training", "kernel": "@triton.autotune kernel"}


def runs(r: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    """Every run of a phase that finished: the first round's and its repeats."""
    first = r["phases"].get(phase)
    if first is None:
        return []
    return [run for run in [first, *first.get("repeats", [])] if "models" in run]


def first_step(r: dict[str, Any], phase: str, model: str) -> float:
    """The median first-step time of a phase's runs."""
    return float(statistics.median(run["models"][model]["first_step_s"] for run in runs(r, phase)))


def bench(r: dict[str, Any], phase: str, model: str) -> tuple[int, int]:
    """Benchmark calls (autotuning, coordinate descent) of the phase's run that made the most."""
    counts = [run["models"][model]["benchmarks"] for run in runs(r, phase)]
    return (
        max(b["autotune"] + b["other"] + b["triton_autotune"] for b in counts),
        max(b["coordesc"] for b in counts),
    )


def seconds(t: float) -> str:
    return f"{t:.2f} s" if t >= 0.1 else f"{t * 1000:.1f} ms"


def table(r: dict[str, Any]) -> list[str]:
    lines = [
        "| phase | runs | " + " | ".join(MODELS.values()) + " | populate s | bytes read |",
        "|---|" + "---:|" * (len(MODELS) + 3),
    ]
    for phase in PHASES:
        done = runs(r, phase)
        if not done:
            continue
        cells = []
        for m in MODELS:
            tuned, coordesc = bench(r, phase, m)
            cells.append(f"{seconds(first_step(r, phase, m))} ({tuned} + {coordesc})")
        loads = [run["load"] for run in done if "load" in run]
        load = f"{statistics.median(x['seconds'] for x in loads):.2f}" if loads else "-"
        read = f"{loads[0]['bytes_read']:,}" if loads else "-"
        lines.append(f"| {phase} | {len(done)} | " + " | ".join(cells) + f" | {load} | {read} |")
    return lines


def acceptance(r: dict[str, Any]) -> list[str]:
    """The issue's points, computed from the run."""
    save = r["phases"]["cold"]["save"]
    lines = ["| check | " + " | ".join(MODELS.values()) + " |", "|---|" + "---|" * len(MODELS)]
    for phase in ("atpack-safe", "atpack-full", "cli-safe", "cli-full"):
        if runs(r, phase):
            calls = [bench(r, phase, m) for m in MODELS]
            lines.append(f"| {phase} benchmark calls, every run | " + " | ".join(f"{a} + {c}" for a, c in calls) + " |")
    for phase, against in (("atpack-full", ("hot", "megacache")), ("cli-full", ("atpack-full", "hot", "megacache"))):
        present = [p for p in against if runs(r, p)]
        if runs(r, phase) and present:
            cells = [
                ", ".join(f"{first_step(r, phase, m) / first_step(r, p, m):.3f}x {p}" for p in present) for m in MODELS
            ]
            lines.append(f"| {phase} first step (medians) | " + " | ".join(cells) + " |")
    lines += ["", f"Megacache blob / pack: {save['megacache_bytes'] / save['pack_bytes']:.1f}x."]
    return lines


def chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(13, 4))
    for ax, (m, title) in zip(axes, MODELS.items()):
        phases = [p for p in PHASES if runs(r, p)]
        values = [first_step(r, p, m) for p in phases]
        bars = ax.bar(phases, values, color=[COLORS[p] for p in phases])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel("first step, s (median, log)")
        ax.tick_params(axis="x", rotation=30)
        for bar, value in zip(bars, values):
            ax.annotate(
                f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8
            )
    fig.suptitle(f"First compiled step per phase: {r['machine'].get('device')}, torch {r['machine'].get('torch')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "gpu_e2e.json")
    r = json.loads(source.read_text())
    save = r["phases"]["cold"]["save"]
    kinds = ", ".join(f"{n} {k}" for k, n in save["kinds"].items())
    lines = [
        "# Warm starts on a GPU",
        "",
        f"`{r['command']}` on {r['machine'].get('device')}, torch {r['machine'].get('torch')}, "
        f"triton {r['machine'].get('triton')}, Python {r['machine'].get('python')}; "
        "each run a fresh process with fresh cache folders (hot: the cold run's), torch's default folders "
        "(neither TORCHINDUCTOR_CACHE_DIR nor TRITON_CACHE_DIR set; HOME and the temp folder per machine folder), "
        + (
            "each phase's at a path of its own, as on a machine whose cache folder path differs from the "
            "capturing machine's."
            if "per-phase" in r["command"]
            else "all at one path, as on a fresh machine with torch's default cache folder."
        )
        + " Timed warm phases ran again in later rounds (rotated order) where the time budget allowed.",
        "",
        "First compiled step per model, the median of the phase's runs (benchmark calls made by a process, "
        "the most of any run: autotuning + coordinate descent, counted at the source):",
        "",
        *table(r),
        "",
        *acceptance(r),
        "",
        f"Pack: {save['pack_bytes']:,} bytes; torch's Megacache blob of the same run: "
        f"{save['megacache_bytes']:,} bytes "
        f"({save['megacache_bytes'] / save['pack_bytes']:.1f}x larger); made by `atpack capture --binaries-only` "
        f"around the cold run (a process that never imports atpack): {kinds}.",
        "",
    ]
    out = source.with_suffix(".md")
    out.write_text("\n".join(lines))
    chart(r, source.with_suffix(".png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
