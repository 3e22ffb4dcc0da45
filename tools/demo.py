"""The main job, end to end, on the real H100 sample shipped in the repo.

    python tools/demo.py [--workdir DIR]

1. unpack the sample caches (Inductor + Triton folders captured on an H100, torch 2.11,
   triton 3.6) into DIR/sample;
2. `atpack pack` them into a pack published to the default store, a local folder (DIR/store);
3. `atpack populate` fresh cache folders from it: on any machine but that H100 the report
   says, per artifact, which environment field differs;
4. `atpack populate --ignore-environment --trust-pickles`: the restore (Triton's host modules
   included), checked file by file against the sample: every file byte-identical, except Triton's
   group files, which list what the pack keeps of each kernel (its metadata and binary, what a warm
   start reads: the IR and source are left out unless `atpack pack --with-ir`) at the new folder's
   paths.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

from atpack.cli import main as atpack
from atpack.replay import MARKER

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.tar.xz"
SAMPLE_ENV = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.environment.json"
CAPTURE_ROOT = "/tmp/tmp.VeCmDqFOG2/mlp"  # where the sample's caches lived on the H100


def run(*argv: str) -> None:
    print(f"\n$ atpack {' '.join(argv)}", flush=True)
    code = atpack(list(argv))
    sys.stdout.flush()
    if code != 0:
        raise SystemExit(f"atpack {argv[0]} failed with exit code {code}")


def compare(sample: Path, populated: Path) -> tuple[int, int, int, list[str]]:
    """(identical files, group files rewritten for the new folder, the sample's files a group file
    leaves out, problems), over every file of `populated` but atpack's own (its lock files, the
    replay marker populate leaves)."""
    same = rewritten = left_out = 0
    problems = []
    for path in sorted(populated.rglob("*")):
        rel = path.relative_to(populated)
        if not path.is_file() or rel.parts[0] == "locks" or str(rel) == MARKER:
            continue
        if not (sample / rel).is_file():
            problems.append(f"{rel} (not in the sample)")
            continue
        mine, theirs = path.read_bytes(), (sample / rel).read_bytes()
        if mine == theirs:
            same += 1
        elif path.name.startswith("__grp__") and (omitted := _group_omits(mine, theirs, sample, populated)) is not None:
            rewritten += 1
            left_out += omitted
        else:
            problems.append(str(rel))
    return same, rewritten, left_out, problems


IR = (".ptx", ".llir", ".ttgir", ".ttir", ".source", ".amdgcn")


def _group_omits(mine: bytes, theirs: bytes, sample: Path, populated: Path) -> int | None:
    """How many of the sample's files a populated group file leaves out (IR only), where it lists
    the rest at the populated folder's paths, each file there; None where it does not."""
    children = json.loads(mine)["child_paths"]
    original = json.loads(theirs.decode().replace(CAPTURE_ROOT + "/" + sample.name, str(populated)))["child_paths"]
    kept = {name: path for name, path in original.items() if name in children}
    if children != kept or not all(os.path.exists(p) for p in children.values()):
        return None
    omitted = set(original) - set(children)
    return len(omitted) if all(name.endswith(IR) for name in omitted) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="atpack-demo", help="where to put everything (default: ./atpack-demo)")
    work = Path(parser.parse_args().workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    sample, store, caches = work / "sample", work / "store", work / "caches"
    with tarfile.open(SAMPLE) as tar:
        tar.extractall(sample, filter="data")
    pack = str(store / "h100-mlp.atpack")
    print(f"sample: {SAMPLE.name}, unpacked into {sample}")

    run(
        "pack",
        "--inductor-dir",
        str(sample / "mlp" / "inductor"),
        "--triton-dir",
        str(sample / "mlp" / "triton"),
        "--environment",
        str(SAMPLE_ENV),
        "--annotate",
        "org.atpack.sample=h100-mlp",
        "-o",
        pack,
    )
    run("verify", pack)
    run("inspect", pack)
    run("populate", pack, "--inductor-dir", str(caches / "inductor"), "--triton-dir", str(caches / "triton"))
    run(
        "populate",
        pack,
        "--ignore-environment",
        "--trust-pickles",
        "--inductor-dir",
        str(caches / "inductor"),
        "--triton-dir",
        str(caches / "triton"),
    )

    print("\nchecking the restored folders against the sample:")
    failed = False
    for name in ("inductor", "triton"):
        same, rewritten, left_out, problems = compare(sample / "mlp" / name, caches / name)
        print(
            f"  {name:8s}: {same} files byte-identical, {rewritten} __grp__ files listing them at the new folder's "
            f"paths, {left_out} IR files left out (no warm start reads them; --with-ir keeps them)"
        )
        for p in problems:
            print(f"  MISMATCH {name}/{p}")
            failed = True
    marker = caches / "inductor" / MARKER
    print(f"  and atpack's replay marker {marker.name}: {'written' if marker.is_file() else 'MISSING'}")
    if failed or not marker.is_file():
        raise SystemExit(1)
    print("restore checked: every file written is the sample's")


if __name__ == "__main__":
    main()
