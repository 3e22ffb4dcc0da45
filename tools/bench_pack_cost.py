"""What `atpack pack` costs against reading and compressing the same bytes (the container-start
issue's other end: packing must cost no more than that).

    python tools/bench_pack_cost.py [--runs 7]

The H100 sample's cache folders and its Megacache blob (as tools/demo.py packs them, the default
pack: kernels without their IR), each method a process of its own, timed from spawn to exit, the
methods' order rotated each run, the output into a fresh folder each time:
  atpack pack          `atpack pack --inductor-dir I --triton-dir T --megacache BLOB -o OUT`
  floor: python        a process that reads one file of each content the pack holds (and the
                       blob, whose graph entry is the FX graph file: read once) and writes them
                       zstd-compressed, level 9 (atpack's default), one stream
  floor: tar, zstd -9  `tar -cf - FILES | zstd -9 -q -o OUT` (zstd's own command line, where installed)
Writes tools/results/bench_pack_cost.{json,md}: medians, and atpack's over the fastest floor.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.tar.xz"
SAMPLE_ENV = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.environment.json"
RESULTS = REPO / "tools" / "results"

FLOOR = r"""
import sys, zstandard
names, out = sys.argv[1], sys.argv[2]
compressor = zstandard.ZstdCompressor(level=9)
with open(out, "wb") as f, compressor.stream_writer(f) as w:
    for name in open(names).read().splitlines():
        with open(name, "rb") as g:
            w.write(g.read())
"""


def sample(work: Path) -> tuple[Path, Path, Path]:
    with tarfile.open(SAMPLE) as tar:
        tar.extractall(work, filter="data")
    root = work / "mlp"
    blob = root / "megacache.bin"
    blob.write_bytes(lzma.decompress((root / "megacache.bin.xz").read_bytes()))
    return root / "inductor", root / "triton", blob


def packed_files(pack: Path, inductor: Path, triton: Path, blob: Path) -> list[str]:
    """One file for each distinct content the pack holds (a kernel file, a result file, the
    blob): what a floor must read to compress the same content."""
    import hashlib

    import atpack

    with atpack.open(pack) as p:
        wanted = set(p._blobs)  # the blob table
    seen: set[str] = set()
    found = [str(blob)]
    results = {".best_config", ".kernel_perf"}
    for root in (inductor, triton):
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            digest = f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
            is_result = path.suffix in results or path.parent.name == "cache"
            if (digest in wanted or is_result) and digest not in seen and "fxgraph" not in path.parts:
                seen.add(digest)
                found.append(str(path))
    return found


def timed(argv: list[str], out: Path, shell: bool = False) -> float:
    if out.exists():
        out.unlink()
    started = time.perf_counter()
    subprocess.run(argv if not shell else " ".join(argv), shell=shell, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inductor, triton, blob = sample(work)
        out = work / "out"
        atpack_argv = [
            sys.executable, "-m", "atpack", "pack", "--inductor-dir", str(inductor), "--triton-dir", str(triton),
            "--megacache", str(blob), "--environment", str(SAMPLE_ENV), "-o", str(out),
        ]  # fmt: skip
        timed(atpack_argv, out)
        names = work / "names.txt"
        files = packed_files(out, inductor, triton, blob)
        names.write_text("\n".join(files))
        pack_bytes = out.stat().st_size
        read_bytes = sum(os.path.getsize(f) for f in files)
        methods: dict[str, tuple[list[str], bool]] = {
            "atpack pack": (atpack_argv, False),
            "floor: python": ([sys.executable, "-c", FLOOR, str(names), str(out)], False),
        }
        if shutil.which("zstd"):
            methods["floor: tar, zstd -9"] = ([f"tar -cf - -T {names} 2>/dev/null | zstd -9 -q -f -o {out}"], True)
        seconds: dict[str, list[float]] = {m: [] for m in methods}
        order = list(methods)
        for run in range(args.runs):
            for name in order[run % len(order) :] + order[: run % len(order)]:
                argv, shell = methods[name]
                seconds[name].append(timed(argv, out, shell))
    medians = {m: statistics.median(v) for m, v in seconds.items()}
    fastest_floor = min(v for m, v in medians.items() if m.startswith("floor"))
    result = {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "runs": args.runs,
        "files_read": len(files),
        "bytes_read": read_bytes,
        "pack_bytes": pack_bytes,
        "seconds": seconds,
        "medians": medians,
        "atpack_over_fastest_floor": medians["atpack pack"] / fastest_floor,
        "atpack_over_python_floor": medians["atpack pack"] / medians["floor: python"],
    }
    out_dir = Path(args.out)
    (out_dir / "bench_pack_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "bench_pack_cost.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# `atpack pack` against reading and compressing the same bytes",
        "",
        f"`python tools/bench_pack_cost.py` on {r['machine']}: the H100 sample's folders and Megacache blob,",
        f"{r['files_read']} files, {r['bytes_read']:,} bytes read; the pack {r['pack_bytes']:,} bytes. Each method",
        f"a process of its own, spawn to exit, {r['runs']} runs, order rotated; medians.",
        "",
        "| method | median s | min s | / fastest floor |",
        "|---|---:|---:|---:|",
    ]
    fastest = min(v for m, v in r["medians"].items() if m.startswith("floor"))
    for m, v in r["medians"].items():
        lines.append(f"| {m} | {v:.3f} | {min(r['seconds'][m]):.3f} | {v / fastest:.2f}x |")
    lines += ["", f"atpack over the Python floor: {r['atpack_over_python_floor']:.2f}x.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
