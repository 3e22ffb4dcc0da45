"""Reliability figures: the scenarios of tests/test_crash.py and tests/test_concurrency.py at a
larger scale, with their negative controls.

    python tools/bench_reliability.py [--kill-points 0] [--random-kills 200] [--rounds 10]

* populate killed with SIGKILL at each of its file-changing calls (open, mkdir, write: after
  half of its bytes, rename), and by its parent after random delays; after each kill, every
  visible file must be whole (as before or as a full run writes it), and a rerun must complete;
* `atpack.create` killed at each of its calls: the URL holds the old pack or the whole new one;
* 8 processes populating the same folders, merging GEMM timings into one file, saving packs
  into one folder, all released at once, for several rounds.

The controls show the checks would see the failures: populate writing files in place instead of
through a temporary file and a rename, and GEMM timings merged without the lock.

Writes tools/results/reliability.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "tools" / "results"
CRASH = REPO / "tests" / "programs" / "crash.py"
RACE = REPO / "tests" / "programs" / "race.py"

POPULATE_SCALE = ["configs=40", "perfs=8", "autotunes=8", "kernels=16", "files_per_kernel=5"]
CREATE_SCALE = ["kernels=40", "files_per_kernel=5", "big_every=2"]
RACE_SCALE = ["configs=60", "perfs=10", "autotunes=10", "kernels=20", "files_per_kernel=5"]


def run(program: Path, mode: str, workdir: Path, *args: str) -> dict[str, Any]:
    """Run one of the test programs (each prints one JSON object) in an interpreter of its own."""
    done = subprocess.run(
        [sys.executable, str(program), mode, str(workdir), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def crash(mode: str, workdir: Path, *args: str) -> dict[str, Any]:
    result = run(CRASH, mode, workdir, *args)
    print(f"  {result['scenario']}: {result['kill_points']} kill points, {result['failures']} failures", flush=True)
    return result


def race(mode: str, workdir: Path, processes: int, rounds: int, *args: str) -> dict[str, Any]:
    result = run(RACE, mode, workdir, "--processes", str(processes), "--rounds", str(rounds), *args)
    print(f"  {result['scenario']}: {result['failures']} failures", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill-points", type=int, default=0, help="populate kill points (0: every call)")
    parser.add_argument("--random-kills", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    points = [] if args.kill_points == 0 else ["--points", str(args.kill_points)]
    crashes: list[dict[str, Any]] = []
    races: list[dict[str, Any]] = []
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="atpack-reliability-") as tmp:
        base = Path(tmp)
        print("kills:", flush=True)
        crashes.append(crash("populate", base / "points", *points, "--scale", *POPULATE_SCALE))
        crashes.append(crash("random", base / "random", "--trials", str(args.random_kills), "--scale", *POPULATE_SCALE))
        crashes.append(crash("create", base / "create", "--scale", *CREATE_SCALE))
        control = crash(
            "populate", base / "control", "--points", "100", "--in-place-writes", "--scale", *POPULATE_SCALE
        )
        control["scenario"] += " (CONTROL: files written in place)"
        crashes.append(control)
        print("races:", flush=True)
        for name, options in (
            ("populate", ["--scale", *RACE_SCALE]),
            ("gemm", ["--per-pack", "50"]),
            ("save", []),
            ("gemm-control", ["--per-pack", "50"]),
        ):
            races.append(race(name, base / f"race-{name}", args.processes, args.rounds, *options))
    seconds = time.perf_counter() - begin
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "seconds": seconds, "args": vars(args), "kills": crashes, "races": races}
    (RESULTS / "reliability.json").write_text(json.dumps(data, indent=1) + "\n")
    (RESULTS / "reliability.md").write_text(report(data, " ".join(sys.argv[1:])))
    print(f"wrote {RESULTS / 'reliability.md'} ({seconds:.0f} s)")


def report(data: dict[str, Any], argv: str) -> str:
    kills, races = data["kills"], data["races"]
    lines = [
        "# Reliability",
        "",
        f"`python tools/bench_reliability.py {argv}`".replace(" `", "`"),
        f"on {data['machine']}, {data['seconds']:.0f} s in all. Scenarios: `tests/reliability.py`; the same "
        "checks at a smaller scale run in `tests/test_crash.py` and `tests/test_concurrency.py`.",
        "",
        "## SIGKILL at any point",
        "",
        "Each kill starts from the same cache folders (an existing GEMM timing file populate merges "
        "into, a file of someone else's); after it, every visible file must be byte-identical to "
        "what was there or to what a full run writes, other names must be hidden `.atpack-*` "
        "temporaries, a Triton group file must only name complete files, and a rerun must end with "
        "every file right. For `atpack.create`, the URL must hold the old pack (or nothing) or the "
        "whole new one.",
        "",
        "| scenario | kill points | killed | work half done | files per run | partial files | "
        "partial packs | foreign names | orphan group files | incomplete reruns | temporaries left |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in kills:
        lines.append(
            f"| {k['scenario']} | {k['kill_points']} | {k['killed']} | {k['interrupted']} | {k['files']} | "
            f"**{k['partial_files']}** | **{k['partial_packs']}** | {k['foreign_files']} | {k['orphan_groups']} | "
            f"{k['incomplete_after_rerun']} | {k['temporaries_left']} |"
        )
    lines += [
        "",
        "A populate run makes {calls} file-changing calls (each one a kill point); a pack write {create}. "
        "Temporaries left are hidden files of killed runs (`.atpack-<pid>-…tmp`, `.model.atpack.…tmp`); "
        "a later populate into the same folder removes cache temporaries an hour old (these runs are "
        "too quick to see it); pack temporaries stay.".format(calls=kills[0]["calls"], create=kills[2]["calls"]),
        "",
        "## Processes at once",
        "",
        f"{races[0]['processes']} spawned processes, released together by a barrier, {races[0]['rounds']} rounds each.",
        "",
        "| scenario | per round | rounds differing from one process's result | partial files | missing entries | "
        "clobbered packs | failed reports | temporaries left | redundant writes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in races:
        lines.append(
            f"| {r['scenario']} | {r['files']} {r['unit']} | {r['differing_rounds']} | **{r['partial_files']}** | "
            f"**{r['missing_entries']}** | {r['clobbered_packs']} | {r['failed_reports']} | "
            f"{r['temporaries_left']} | {r['redundant_writes']} |"
        )
    lines += [
        "",
        "Redundant writes count artifacts that more than one process wrote in the same round: the "
        "processes did race for the same files. The control rows show what the checks catch: "
        "files written in place leave partial files after kills, and GEMM timings merged without "
        "the lock lose entries.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
