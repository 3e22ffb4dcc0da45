"""Run one of the races of `tests/reliability.py`: processes that populate, merge or save into the
same folders at once, for several rounds.

    python race.py populate     WORKDIR [--processes N] [--rounds R] [--scale KEY=VALUE ...]
    python race.py gemm         WORKDIR [--processes N] [--rounds R] [--per-pack P]
    python race.py gemm-control WORKDIR [--processes N] [--rounds R] [--per-pack P]
    python race.py save         WORKDIR [--processes N] [--rounds R]

gemm-control (the negative control) merges GEMM timings without the lock, which the checks must
catch. Prints one JSON object: the counts of `reliability.RaceResult`. `tools/bench_reliability.py`
runs it (tests/test_concurrency.py runs the same races inside pytest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: reliability

import reliability


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["populate", "gemm", "gemm-control", "save"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-pack", type=int, default=25, help="GEMM timings per process and round")
    parser.add_argument("--scale", nargs="*", default=[], help="Scale fields of the populate race, e.g. kernels=20")
    args = parser.parse_args()
    fields = {f.name for f in dataclasses.fields(reliability.Scale)}
    changes = dict(item.split("=", 1) for item in args.scale)
    unknown = set(changes) - fields
    if unknown:
        parser.error(f"unknown scale fields: {sorted(unknown)}")
    scale = reliability.Scale(**{k: int(v) for k, v in changes.items()})
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ[reliability.RACE_DIR] = str(args.workdir)  # the spawned processes find their work there
    n, rounds = args.processes, args.rounds
    if args.mode == "populate":
        result = reliability.populate_race(args.workdir, n, rounds, scale)
    elif args.mode == "save":
        result = reliability.save_race(args.workdir, n, rounds)
    else:
        result = reliability.gemm_race(args.workdir, n, rounds, per_pack=args.per_pack, lock=args.mode == "gemm")
    print(json.dumps(result.to_json()))


if __name__ == "__main__":
    main()
