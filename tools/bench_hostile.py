"""What a hostile pack can make each command cost: peak memory and time, against a stated bound.

    python tools/bench_hostile.py [--timeout 60]

Builds small packs that ask for much (below), runs every command that reads a pack on each (inspect,
verify, populate and its dry run, megacache, merge, report, diff, sign, push to a local store and
pull back from it), one
process per run (`/usr/bin/time` reads the peak resident memory), and checks each against the
bound the spec states (spec/FORMAT.md, 7.6): peak memory at most BASE_MIB plus
DECLARED_MULTIPLE times the largest frame the pack declares (a command holds a frame and a blob
cut from it at once) plus INDEX_MULTIPLE times its index decompressed (the artifacts decoded),
and at most TIMEOUT seconds. Writes tools/results/bench_hostile.{json,md}.

Packs (each at most a few hundred KiB):
  frame-at-the-limit  one frame declaring almost as much as `Limits.max_expansion` lets any pack
                      declare (15 MiB: zeros compress about 8,000x, so the pack is tiny)
  frame-over-limit    the same frame declaring 64 MiB (over 1024x the pack: refused when opened)
  one-blob-many-files 5,000 kernels whose files are all one 64 KiB blob (writes 5,000 folders)
  wide-index          60,000 `.best_config` records (an index of about 17 MiB decompressed)
  many-megacache      4,000 Megacache autotune entries, each its own small blob
  gemm-index          a GEMM timing file of 1,000,000 candidate timings (an index of about 20 MiB
                      of the smallest records the schema has: each decodes to Python objects
                      several times its size)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atpack
from atpack.adapters import megacache
from atpack.artifacts import ChoiceTiming, GemmEntry, GemmSystem, InductorGemmTimings, KernelFile, TritonKernel
from atpack.collect import pack_caches
from atpack.digest import digest_bytes
from atpack.testing.packs import INDUCTOR_ENV, TRITON_ENV, alnum, best_config, hex64, pack_of, read_footer

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "tools" / "results"
BASE_MIB = 160
"""A command's own footprint: Python, atpack, msgspec, zstandard, fsspec where it is used."""
DECLARED_MULTIPLE = 3
"""A compressed frame, the frame decompressed and the blob cut from it."""
INDEX_MULTIPLE = 16
"""The index decompressed, and every artifact of it decoded into Python objects."""
TIMEOUT = 60.0

COMMANDS: dict[str, list[str]] = {
    "inspect": ["inspect", "-v", "{pack}"],
    "verify": ["verify", "{pack}"],
    "populate --dry-run": ["populate", "--dry-run", "--ignore-environment", "{pack}", *["{dirs}"]],
    "populate": ["populate", "--ignore-environment", "{pack}", *["{dirs}"]],
    "megacache": ["megacache", "{pack}", "-o", "{out}/blob.bin"],
    "merge": ["merge", "{pack}", "-o", "{out}/merged.atpack"],
    "report": ["report", "{pack}", "-o", "{out}/report.html"],
    "diff": ["diff", "{pack}", "{pack}"],
    "sign": ["sign", "{pack}", "--key", "{key}", "-o", "{out}/signed.atpack"],
    "push": ["push", "{pack}", "{out}/store", "-t", "t"],
    "pull": ["pull", "{store}", "t", "-o", "{out}/pulled.atpack", "--local", "{out}/local"],
}


def frame_of_zeros(size: int) -> bytes:
    kernel = TritonKernel(
        env=TRITON_ENV.digest,
        cache_key=alnum("zeros", 52),
        name="k",
        files=(
            KernelFile("k.json", digest_bytes(b'{"name": "k"}'), 13),
            KernelFile("k.cubin", digest_bytes(b"\0" * size), size),
        ),
    )
    return pack_of(kernel, blobs=(b'{"name": "k"}', b"\0" * size))


def one_blob_many_files(kernels: int = 5000) -> bytes:
    blob = os.urandom(64 << 10)
    meta = [(f"k{n}.json", f'{{"name": "k{n}"}}'.encode()) for n in range(kernels)]
    artifacts = [
        TritonKernel(
            env=TRITON_ENV.digest,
            cache_key=alnum(f"many{n}", 52),
            name=f"k{n}",
            files=(
                KernelFile(name, digest_bytes(data), len(data)),
                KernelFile(f"k{n}.cubin", digest_bytes(blob), len(blob)),
            ),
        )
        for n, (name, data) in enumerate(meta)
    ]
    return pack_of(*artifacts, blobs=(blob, *(data for _, data in meta)))


def wide_index(records: int = 60_000) -> bytes:
    return pack_of(*(best_config(INDUCTOR_ENV.digest, n) for n in range(records)))


def many_megacache(entries: int = 4000) -> bytes:
    def record(n: int) -> bytes:
        return f'{{"XBLOCK": 64, "num_warps": 4, "num_stages": {n % 4}}}'.encode()

    keys = [f"{alnum(f'd{n}', 2)}/{hex64(f'e{n}')}.best_config" for n in range(entries)]
    blob = megacache.write_blob(("autotune", key, record(n)) for n, key in enumerate(keys))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.atpack"
        pack_caches(path, sources=(), megacache=blob, environment=INDUCTOR_ENV)
        return path.read_bytes()


def gemm_index(entries: int = 200, candidates: int = 5000) -> bytes:
    rng = random.Random(0)
    gemms = tuple(
        GemmEntry(
            op="mm",
            inputs=f"i{n}",
            precision="p",
            timings=tuple(ChoiceTiming(f"c{i}", round(rng.random(), 6)) for i in range(candidates)),
        )
        for n in range(entries)
    )
    return pack_of(InductorGemmTimings(env=INDUCTOR_ENV.digest, system=GemmSystem(hash="cd" * 32), entries=gemms))


PACKS: dict[str, Callable[[], bytes]] = {
    "frame-at-the-limit": lambda: frame_of_zeros(15 << 20),
    "frame-over-limit": lambda: frame_of_zeros(64 << 20),
    "one-blob-many-files": one_blob_many_files,
    "wide-index": wide_index,
    "many-megacache": many_megacache,
    "gemm-index": gemm_index,
}


def declared(data: bytes) -> int:
    """The largest frame the pack declares (0 where it does not open)."""
    with tempfile.NamedTemporaryFile(suffix=".atpack") as f:
        f.write(data)
        f.flush()
        try:
            with atpack.open(f.name, limits=atpack.Limits(max_expansion=1 << 15)) as pack:
                return max((fr.size for fr in pack._frames), default=0)
        except atpack.AtpackError:
            return 0


def run(argv: list[str], timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "atpack", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "timed_out": True, "peak_mib": None, "exit": None, "said": ""}
    seconds = time.perf_counter() - started
    lines = result.stderr.strip().splitlines()
    peak_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    said = next((line for line in lines if line.startswith("atpack:")), "")
    return {
        "seconds": round(seconds, 3),
        "peak_mib": round(peak_kib / 1024, 1),
        "exit": result.returncode,
        "said": said[:200],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "atpack", "keygen", "bench"], cwd=tmp, check=True, capture_output=True)
        key = Path(tmp) / "bench.key"
        for name, build in PACKS.items():
            data = build()
            pack = Path(tmp) / f"{name}.atpack"
            pack.write_bytes(data)
            largest, index = declared(data), read_footer(data).index_size
            store = Path(tmp) / f"{name}-store"  # what `pull` reads: the pack pushed (where it opens at all)
            subprocess.run(
                [sys.executable, "-m", "atpack", "push", str(pack), str(store), "-t", "t"], capture_output=True
            )
            bound = BASE_MIB + (DECLARED_MULTIPLE * largest + INDEX_MULTIPLE * index) / (1 << 20)
            for command, template in COMMANDS.items():
                work = Path(tempfile.mkdtemp(dir=tmp))
                dirs = f"--inductor-dir {work}/i --triton-dir {work}/t"
                argv = [a.format(pack=pack, out=work, dirs=dirs, key=key, store=store) for a in template]
                argv = [w for a in argv for w in (a.split() if a.startswith("--inductor-dir") else [a])]
                measured = run(argv, args.timeout)
                within = not measured.get("timed_out") and (measured["peak_mib"] or 0) <= bound
                rows.append(
                    {
                        "pack": name,
                        "pack_bytes": len(data),
                        "declared_largest": largest,
                        "index": index,
                        "command": command,
                        "bound_mib": round(bound, 1),
                        "within": within,
                        **measured,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    results = {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "base_mib": BASE_MIB,
        "declared_multiple": DECLARED_MULTIPLE,
        "index_multiple": INDEX_MULTIPLE,
        "timeout_s": args.timeout,
        "rows": rows,
    }
    (out / "bench_hostile.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "bench_hostile.md").write_text(markdown(results))
    return 0 if all(r["within"] for r in rows) else 1


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Hostile packs: what each command costs",
        "",
        f"`python tools/bench_hostile.py` on {results['machine']}. Each command a process of its own;",
        "peak resident memory from `/usr/bin/time`. Bound: "
        f"{results['base_mib']} MiB + {results['declared_multiple']} x the largest frame the pack declares",
        f"+ {results['index_multiple']} x its index decompressed,",
        f"and {results['timeout_s']:.0f} s. Exit 1 with one line is a refusal (its first line shown).",
        "",
        "| pack | bytes | largest frame | index | command | exit | peak MiB | bound MiB | seconds | within | said |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results["rows"]:
        said = r["said"].replace("|", "\\|")
        lines.append(
            f"| {r['pack']} | {r['pack_bytes']:,} | {r['declared_largest']:,} | {r['index']:,} | {r['command']} | "
            f"{r['exit']} | "
            f"{r['peak_mib']} | {r['bound_mib']} | {r['seconds']} | {'yes' if r['within'] else '**no**'} | {said} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
