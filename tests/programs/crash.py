"""Kill populate or a pack write with SIGKILL, at many points, and check what it leaves.

    python crash.py populate WORKDIR [--points N] [--scale KEY=VALUE ...]
    python crash.py random   WORKDIR --trials N [--seed S] [--scale ...]
    python crash.py create   WORKDIR [--points N] [--scale ...]

With --in-place-writes (the negative control), populate writes files in place instead of through
a temporary file and a rename, which the checks must catch.

Prints one JSON object: the counts of `reliability.CrashResult`. Runs in a fresh interpreter
because it forks once per kill point (tests/reliability.py has the loops, atpack.testing.faults
the kill points and the checks).
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

import atpack.files


def _write_in_place(self: atpack.files.CacheDir, path: str, data: bytes | memoryview, **options: bool) -> None:
    self._make_folder(path.rpartition("/")[0])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["populate", "random", "create"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--points", type=int, default=None, help="kill points, spread evenly (default: every call)")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", nargs="*", default=[], help="Scale fields, e.g. kernels=20")
    parser.add_argument("--in-place-writes", action="store_true", help="the negative control")
    args = parser.parse_args()
    if args.in_place_writes:
        atpack.files.CacheDir.write = _write_in_place  # type: ignore[method-assign]
    fields = {f.name for f in dataclasses.fields(reliability.Scale)}
    changes = dict(item.split("=", 1) for item in args.scale)
    unknown = set(changes) - fields
    if unknown:
        parser.error(f"unknown scale fields: {sorted(unknown)}")
    scale = reliability.Scale(**{k: int(v) for k, v in changes.items()})
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.mode == "create":
        result = reliability.create_kill_points(args.workdir / "packs", scale, args.points)
    else:
        pack = args.workdir / "scenario.atpack"
        reliability.write_scenario_pack(pack, scale)
        caches = args.workdir / "caches"
        if args.mode == "populate":
            result = reliability.populate_kill_points(pack, caches, args.points)
        else:
            result = reliability.populate_random_kills(pack, caches, args.trials, seed=args.seed)
    print(json.dumps(result.to_json()))


if __name__ == "__main__":
    main()
