"""What recording the cache lookups costs a training process (`atpack explain`'s record).

    python tools/bench_explain.py [--runs 9]      writes tools/results/bench_explain.{md,json}

A CPU training step (tests/programs/explain_step.py: a small model compiled by Inductor's C++
backend, forward and backward), on one machine folder warmed first (torch's default folders,
its FX graph and AOT autograd entries there), run as fresh processes that never import atpack,
the two settings interleaved so that the machine's noise falls on both; medians:
  quiet      ATPACK_EXPLAIN=0: the plug-in records nothing
  recording  ATPACK_EXPLAIN=1: every lookup recorded into <inductor>/atpack-lookups/
Measured: the step in the child (compile, cache loads, run; its own clock), the process from
spawn to exit, and what the record says recording took (its `spent` lines).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEP = REPO / "tests" / "programs" / "explain_step.py"
RESULTS = REPO / "tools" / "results"
SETTINGS = ("quiet", "recording")
TIMED = """
import runpy, sys, time
start = time.perf_counter()
sys.argv = [{step!r}]
runpy.run_path({step!r}, run_name="__main__")
print("step_s", time.perf_counter() - start)
"""


def run_once(setting: str, machine: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATPACK_", "TORCHINDUCTOR_", "TRITON_"))}
    env.update(
        HOME=str(machine / "home"), TMPDIR=str(machine / "tmp"), ATPACK_EXPLAIN="1" if setting == "recording" else "0"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", TIMED.format(step=str(STEP))], env=env, capture_output=True, text=True)
    process_s = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    step_s = float(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("step_s")))
    return {"step_s": step_s, "process_s": process_s, "spent_s": _spent(machine)}


def _spent(machine: Path) -> float:
    """What the newest record says recording took (0 where nothing recorded), then clear it."""
    from atpack.lookups import read_records, record_files

    folders = list((machine / "tmp").glob("torchinductor_*"))
    paths = record_files(str(folders[0])) if folders else []
    spent = sum(r.spent_s for r in read_records(paths))
    for path in paths:
        os.unlink(path)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    try:
        machine = root / "machine"
        (machine / "home").mkdir(parents=True)
        (machine / "tmp").mkdir()
        run_once("quiet", machine)  # fills the caches: every later run hits
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
        for i in range(args.runs):
            for setting in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
                runs[setting].append(run_once(setting, machine))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {s: {k: statistics.median(r[k] for r in runs[s]) for k in runs[s][0]} for s in SETTINGS}
    quiet, recording = medians["quiet"], medians["recording"]
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": args.runs,
        "medians": medians,
        "step_ratio": recording["step_s"] / quiet["step_s"],
        "process_ratio": recording["process_s"] / quiet["process_s"],
        "spent_share_of_step": recording["spent_s"] / recording["step_s"],
        "all": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_explain.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# What recording the cache lookups costs (`tools/bench_explain.py`)",
        "",
        f"{args.runs} runs of each setting, interleaved, medians; a CPU training step on a warm cache "
        f"(every lookup a hit), {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "| setting | step (s) | process (s) | recording, by its own clock (s) |",
        "|---|---:|---:|---:|",
        *(f"| {s} | {m['step_s']:.3f} | {m['process_s']:.3f} | {m['spent_s']:.4f} |" for s, m in medians.items()),
        "",
        f"Recording / quiet: step {result['step_ratio']:.3f}x, process {result['process_ratio']:.3f}x; recording's "
        f"own time is {result['spent_share_of_step']:.2%} of the step.",
        "",
    ]
    (args.out / "bench_explain.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
