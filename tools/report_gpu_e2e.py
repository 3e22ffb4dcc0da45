"""Turn tools/results/gpu_e2e.json (from tools/gpu_e2e.py) into a chart and a summary table.

    python tools/report_gpu_e2e.py [RESULTS.json]     writes gpu_e2e.png and gpu_e2e.md beside it
Needs matplotlib (not an atpack dependency).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PHASES = ("cold", "megacache", "atpack-safe", "atpack-full", "hot")
MODELS = {"mlp": "MLP, inference", "block": "transformer block, training", "kernel": "@triton.autotune kernel"}


def bench(model: dict[str, Any]) -> tuple[int, int]:
    b = model["benchmarks"]
    return b["autotune"] + b["other"] + b["triton_autotune"], b["coordesc"]


def table(r: dict[str, Any]) -> list[str]:
    lines = [
        "| phase | " + " | ".join(MODELS.values()) + " | populate s | bytes read |",
        "|---|" + "---:|" * (len(MODELS) + 2),
    ]
    for phase in PHASES:
        p = r["phases"].get(phase)
        if p is None or "models" not in p:
            continue
        cells = []
        for m in MODELS:
            v = p["models"][m]
            tuned, coordesc = bench(v)
            cells.append(f"{v['first_step_s']:.2f} s ({tuned} + {coordesc})")
        load = p.get("load", {})
        seconds = f"{load['seconds']:.2f}" if load else "-"
        read = f"{load['bytes_read']:,}" if load else "-"
        lines.append(f"| {phase} | " + " | ".join(cells) + f" | {seconds} | {read} |")
    return lines


def chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(13, 4))
    for ax, (m, title) in zip(axes, MODELS.items()):
        phases = [p for p in PHASES if p in r["phases"] and "models" in r["phases"][p]]
        values = [r["phases"][p]["models"][m]["first_step_s"] for p in phases]
        bars = ax.bar(phases, values, color=["#999", "#c66", "#6a6", "#393", "#69c"][: len(phases)])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel("first step, s (log)")
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
    lines = [
        "# Warm starts on a GPU",
        "",
        f"`{r['command']}` on {r['machine'].get('device')}, torch {r['machine'].get('torch')}, "
        f"triton {r['machine'].get('triton')}, Python {r['machine'].get('python')}; "
        "one run, each phase a fresh process.",
        "",
        "First compiled step per model (benchmark calls made by that process: autotuning + coordinate descent, "
        "counted at the source):",
        "",
        *table(r),
        "",
        f"Pack: {save['pack_bytes']:,} bytes; torch's Megacache blob of the same run: "
        f"{save['megacache_bytes']:,} bytes "
        f"({save['megacache_bytes'] / save['pack_bytes']:.1f}x larger). Kernel folders kept by the capture: "
        f"{save['kernel_folders']}.",
        "",
    ]
    out = source.with_suffix(".md")
    out.write_text("\n".join(lines))
    chart(r, source.with_suffix(".png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
