"""Many GPUs on one node: every rank warm from one pack.

    python tools/gpu_multi.py --out DIR [--gpus N]           the run (N GPUs; default: all)
    python tools/gpu_multi.py --out DIR --gpus 2 --smoke     the same orchestration on the CPU

Inductor bakes the device index into a kernel's source, and so into its cache keys (pytorch
issue 170123): results tuned on GPU 0 miss on GPU 3. atpack's answer is to capture per rank and
merge: the first job tunes on every rank (each rank captures what it compiled into its own pack),
`atpack merge` combines the packs (the same kernels and timings dedupe; each rank's
device-specific entries are kept side by side), and every rank of any later job finds its own.

Phases (each a fresh `torchrun` job, fresh cache folders):
  tune        every rank compiles the model (max-autotune) in its own cache folders and saves a pack
  merge       the rank packs become one pack (policy: fastest)
  warm-1      one process loads the merged pack into empty folders, then its first step: the
              single-GPU warm start to compare with
  warm-all    every rank at once loads the merged pack into ONE shared cache folder, then its first
              step
Per rank: cache hits and misses by kind (torch's counters), benchmark calls (counted at the
benchmarker, as in tools/gpu_e2e.py), first-step time. Writes DIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def worker(phase: str, work: Path, smoke: bool) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    import torch
    from gpu_e2e import Counts, build, first_step

    import atpack

    if not smoke:
        torch.cuda.set_device(rank)
    counts = Counts()
    counts.install()
    result: dict[str, Any] = {"rank": rank, "phase": phase}
    if phase.startswith("warm"):
        start = time.perf_counter()
        report = atpack.load_cache_artifacts(work / "merged.atpack", trust_pickles=True)
        result["load"] = {
            "seconds": time.perf_counter() - start,
            "written": report.count("written"),
            "present": report.count("present"),
            "skipped": report.count("skipped"),
            "failed": report.count("failed"),
        }
    recording = atpack.capture() if phase == "tune" else None
    if recording is not None:
        recording.__enter__()
    out, result["first_step_s"] = first_step(build("mlp", smoke), smoke)
    result["benchmarks"] = counts.snapshot()
    from torch._dynamo.utils import counters

    result["cache"] = {
        "fxgraph": {k: counters["inductor"][f"fxgraph_cache_{k}"] for k in ("hit", "miss")},
        "aot_autograd": {k: counters["aot_autograd"][f"autograd_cache_{k}"] for k in ("hit", "miss")},
    }
    result["output_sum"] = float(out[0].float().sum())
    if recording is not None:
        recording.__exit__(None, None, None)
        info = atpack.save_cache_artifacts(work / f"rank{rank}.atpack", capture=recording, with_ir=False)
        result["pack_bytes"] = info.size
    return result


def torchrun(phase: str, n: int, work: Path, smoke: bool, shared: Path | None, out: Path) -> list[dict[str, Any]]:
    """Run `phase` on `n` ranks; each rank's cache folders are its own unless `shared`."""
    script = (
        "import os, subprocess, sys; r = os.environ['LOCAL_RANK']; "
        f"base = {str(shared)!r} if {shared is not None} else os.path.join({str(work)!r}, {phase!r} + '-rank' + r); "
        "env = {**os.environ, 'TORCHINDUCTOR_CACHE_DIR': base + '/inductor', 'TRITON_CACHE_DIR': base + '/triton'}; "
        f"sys.exit(subprocess.call([sys.executable, {__file__!r}, '--worker', {phase!r}, '--work', {str(work)!r}, "
        f"'--out', {str(out)!r}] + (['--smoke'] if {smoke} else []), env=env))"
    )
    launcher = work / f"launch-{phase}.py"
    launcher.write_text(script)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", str(launcher)],
        capture_output=True,
        text=True,
    )
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or len(results) != n:
        raise SystemExit(f"{phase} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return sorted(results, key=lambda r: r["rank"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", default=None)
    parser.add_argument("--gpus", type=int, default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, Path(args.work), args.smoke)), flush=True)
        return
    import torch

    n = args.gpus or (2 if args.smoke else torch.cuda.device_count())
    work = Path(args.work or f"/tmp/atpack-gpu-multi-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python tools/gpu_multi.py " + " ".join(sys.argv[1:]),
        "ranks": n,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "phases": {},
    }

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    results["phases"]["tune"] = torchrun("tune", n, work, args.smoke, None, out)
    save()
    import atpack

    start = time.perf_counter()
    report = atpack.merge([work / f"rank{r}.atpack" for r in range(n)], work / "merged.atpack", policy="fastest")
    results["phases"]["merge"] = {
        "seconds": time.perf_counter() - start,
        "bytes": report.info.size if report.info else 0,
        "conflicts": len(report.conflicts),
        "artifacts": report.artifacts,
    }
    save()
    results["phases"]["warm-1"] = torchrun("warm-1", 1, work, args.smoke, None, out)
    save()
    results["phases"]["warm-all"] = torchrun("warm-all", n, work, args.smoke, work / "shared", out)
    single = results["phases"]["warm-1"][0]["first_step_s"]
    results["summary"] = {
        "benchmark_calls_per_rank": [sum(r["benchmarks"].values()) for r in results["phases"]["warm-all"]],
        "first_step_vs_single_gpu_warm": [r["first_step_s"] / single for r in results["phases"]["warm-all"]],
    }
    save()
    print(json.dumps(results["summary"]))


if __name__ == "__main__":
    main()
