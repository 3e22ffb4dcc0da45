"""Benchmark of the pack format (format 1): small records, ~200 MB of blobs, compression options.

    python tools/bench_format.py            full run (a few minutes on 2 cores), writes
                                            tools/results/bench_format.json and .md
    python tools/bench_format.py --quick    smaller data, fewer runs; writes to a temporary
                                            folder unless --out is given

1. 10,000 small records: a pack of `InductorBestConfig` artifacts (modelled on the sample's
   ``.best_config`` files), against plain zstd of the same files as one stream and against one
   zstd frame per file: write time, open time (index read + decode of every artifact), size.
2. ~200 MB of blobs (the sample's Triton kernel files, copied with small per-copy mutations,
   plus incompressible random blobs): write and read throughput, size against plain zstd of
   the same bytes, and the floor for reading: zstd decompression plus sha256 of the
   decompressed bytes of the very same frames, measured in the same rounds.
3. Compression options for many small files (the sample's kernel files and the records): one
   frame per blob, grouped frames (several group sizes, digest vs (hint, digest) order, zstd
   levels 3/9/19), a trained dictionary with a frame per blob, one stream; and what random
   access to one blob costs in each (bytes fetched, bytes decompressed, time).

Every timing is repeated and reported as the median (all runs are kept in the JSON); the cases
compared with each other run interleaved, round by round, in the same process. Only atpack's
public API is used, except the frame table of a written pack (read-only) for the floor.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime
import gc
import hashlib
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zstandard

import atpack
from atpack import storage
from atpack.adapters import inductor as inductor_adapter
from atpack.adapters import triton as triton_adapter
from atpack.digest import canonical, digest_bytes
from atpack.env import environment_from_json
from atpack.pack import DEFAULT_GROUP_SIZE, DEFAULT_LEVEL

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.tar.xz"
SAMPLE_ENV = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.environment.json"
RESULTS = REPO / "tools" / "results"

KIB, MIB = 1 << 10, 1 << 20
FOOTER = struct.Struct("<QQQ32sHHI8s")  # spec/FORMAT.md 3.2: index offset, length, size, ...
GROUP_SIZES = (64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB)
LEVELS = (3, 9, 19)
DICT_SIZE = 110 * KIB


@dataclasses.dataclass(frozen=True)
class Settings:
    quick: bool
    records: int
    blob_bytes: int
    random_share: float
    runs: int
    write_runs: int
    option_runs: int
    access_samples: int
    seed: int = 20260509


FULL = Settings(
    quick=False,
    records=10_000,
    blob_bytes=200 * MIB,
    random_share=0.15,
    runs=5,
    write_runs=7,
    option_runs=5,
    access_samples=200,
)
QUICK = Settings(
    quick=True,
    records=2_000,
    blob_bytes=40 * MIB,
    random_share=0.15,
    runs=3,
    write_runs=3,
    option_runs=2,
    access_samples=50,
)


# --------------------------------------------------------------------------- timing


def timed_rounds(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Run every case once per round, `runs` rounds, interleaved; seconds per run."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


class Sink:
    """A write-only stream that keeps nothing: timed writes measure CPU, not the disk."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.size += len(data)
        return len(data)


def stat(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(seconds), 6), "runs_s": [round(s, 6) for s in seconds]}


def med(seconds: list[float]) -> float:
    return statistics.median(seconds)


def mb_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e6, 1)


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (tracemalloc) while `fn` runs, above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def profile_top(fn: Callable[[], object], top: int = 12) -> list[dict[str, Any]]:
    """cProfile one call of `fn`; the functions with the most own time."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in stats.values()) or 1.0
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in rows:
        where = func if filename == "~" else f"{Path(filename).name}:{line}:{func}"
        out.append(
            {
                "function": where,
                "calls": ncalls,
                "own_s": round(tottime, 4),
                "cum_s": round(cumtime, 4),
                "own_share": round(tottime / total, 3),
            }
        )
    return out


# --------------------------------------------------------------------------- machine


def machine_facts() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "zstandard": zstandard.__version__,
        "zstandard_backend": zstandard.backend,
        "zstd_library": ".".join(str(v) for v in zstandard.ZSTD_VERSION),
        "msgspec": msgspec.__version__,
        "atpack": atpack.__version__,
        "git_commit": git("rev-parse", "HEAD"),
        "atpack_tree_dirty": bool(git("status", "--porcelain", "--", "atpack")),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Blob:
    digest: str
    data: bytes
    hint: str


def unpack_sample(workdir: Path) -> Path:
    with tarfile.open(SAMPLE) as tar:
        members = [m for m in tar.getmembers() if not m.name.endswith("megacache.bin.xz")]
        tar.extractall(workdir, members=members, filter="data")
    return workdir / "mlp"


def kernel_blobs(sample: Path, env_digest: str) -> tuple[list[Blob], int]:
    """The blobs a pack of the sample's Triton kernel folders holds (deduplicated), with the
    grouping hint the Triton adapter gives them; and the number of files they came from."""
    blobs: dict[str, Blob] = {}
    files = 0

    def add_blob(data: bytes, hint: str) -> str:
        nonlocal files
        files += 1
        digest = digest_bytes(data)
        blobs.setdefault(digest, Blob(digest, bytes(data), hint))
        return digest

    kernels = [
        a
        for a in triton_adapter.collect(str(sample / "triton"), env_digest, add_blob)
        if isinstance(a, atpack.TritonKernel)
    ]
    if not kernels:
        raise SystemExit("no Triton kernels collected from the sample")
    return list(blobs.values()), files


SHARD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def best_config_file(rng: random.Random, configs_hashes: list[str]) -> bytes:
    """One ``.best_config`` file as torch writes it (json.dumps of the chosen config)."""
    shape = rng.random()
    data: dict[str, Any]
    if shape < 0.40:  # pointwise
        data = {"XBLOCK": rng.choice([64, 128, 256, 512, 1024])}
        warps = rng.choice([1, 2, 4, 4, 4, 8, 8])
    elif shape < 0.50:  # 2D pointwise
        data = {"YBLOCK": rng.choice([8, 16, 32, 64, 128, 256]), "XBLOCK": rng.choice([16, 32, 64, 128, 256])}
        warps = rng.choice([2, 4, 4, 8])
    elif shape < 0.80:  # reduction
        data = {
            "XBLOCK": rng.choice([1, 1, 1, 2, 4, 8, 16, 32, 64]),
            "R0_BLOCK": rng.choice([8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]),
        }
        warps = rng.choice([2, 4, 8, 8, 16, 16, 32])
    else:  # persistent reduction
        data = {"XBLOCK": rng.choice([1, 2, 4, 8, 16, 32, 64])}
        warps = rng.choice([1, 2, 4, 8, 16])
    coordesc = rng.random() < 0.6
    data["num_warps"] = warps
    data["num_stages"] = rng.choices([1, 2, 3, 4], weights=[85, 5, 5, 5])[0]
    data["configs_hash"] = rng.choice(configs_hashes)
    data["found_by_coordesc"] = coordesc
    data["time_taken_ms"] = rng.randint(150, 6000) if coordesc else rng.randint(0, 400)
    data["triton_cache_hash"] = None if rng.random() < 0.7 else "".join(rng.choice(BASE32) for _ in range(52))
    return json.dumps(data).encode("ascii")


def best_config_records(n: int, rng: random.Random, root: Path, env_digest: str) -> tuple[list[Any], list[bytes]]:
    """`n` distinct .best_config files written under `root`, collected with the Inductor adapter:
    (artifacts, raw files), both in path order."""
    configs_hashes = [rng.randbytes(32).hex() for _ in range(48)]  # shared: one per candidate list
    files: dict[str, bytes] = {}
    while len(files) < n:
        path = f"{rng.choice(SHARD_CHARS)}{rng.choice(SHARD_CHARS)}/{rng.randbytes(32).hex()}.best_config"
        files[path] = best_config_file(rng, configs_hashes)
    for path, raw in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(raw)
    artifacts = list(inductor_adapter.collect(str(root), env_digest))
    bad = [a for a in artifacts if not isinstance(a, atpack.InductorBestConfig)]
    if bad or len(artifacts) != n:
        raise SystemExit(f"collecting the generated records failed: {bad[:3]}")
    return artifacts, [files[p] for p in sorted(files)]


def mutated(data: bytes, rng: random.Random, copy: int) -> bytes:
    """A copy of `data` with a few bytes changed (about one per 16 KiB, at least 4), so copies
    do not deduplicate but stay as compressible as the original."""
    if not data:
        return data
    out = bytearray(data)
    for _ in range(max(4, len(data) // (16 * KIB))):
        pos = rng.randrange(len(out))
        out[pos] = (out[pos] + 1 + copy) % 256
    return bytes(out)


def big_blob_set(kernel: list[Blob], target: int, random_share: float, rng: random.Random) -> tuple[list[Blob], dict]:
    """~`target` bytes of unique blobs: mutated copies of the kernel files, then random blobs
    of log-uniform sizes (4 KiB .. 8 MiB). Returned in the order they would be added."""
    blobs: dict[str, Blob] = {}
    kernel_bytes = sum(len(b.data) for b in kernel)
    compressible_target = int(target * (1 - random_share))
    copies = max(1, round(compressible_target / kernel_bytes))
    for copy in range(copies):
        for b in kernel:
            data = mutated(b.data, rng, copy)
            digest = digest_bytes(data)
            blobs.setdefault(digest, Blob(digest, data, b.hint))
    compressible = sum(len(b.data) for b in blobs.values())
    random_bytes = 0
    while compressible + random_bytes < target:
        size = min(int(2 ** rng.uniform(12, 23)), target - compressible - random_bytes)
        data = rng.randbytes(max(size, 1))
        digest = digest_bytes(data)
        blobs[digest] = Blob(digest, data, ".bin")
        random_bytes += len(data)
    out = list(blobs.values())
    sizes = sorted(len(b.data) for b in out)
    return out, {
        "blobs": len(out),
        "bytes": compressible + random_bytes,
        "kernel_file_copies": copies,
        "compressible_bytes": compressible,
        "random_bytes": random_bytes,
        "random_blobs": sum(1 for b in out if b.hint == ".bin"),
        "median_blob_bytes": sizes[len(sizes) // 2],
        "blobs_over_group_size": sum(1 for s in sizes if s > DEFAULT_GROUP_SIZE),
    }


# --------------------------------------------------------------------------- pack helpers


def read_footer(path: Path) -> tuple[int, int, int]:
    """(index offset, compressed index length, index size) from the footer (spec/FORMAT.md 3.2)."""
    with open(path, "rb") as f:
        f.seek(-FOOTER.size, os.SEEK_END)
        offset, length, size, *_ = FOOTER.unpack(f.read(FOOTER.size))
    return offset, length, size


def frame_payloads(path: Path) -> tuple[list[tuple[bytes, int]], list[list[tuple[int, int]]], list[int]]:
    """The compressed frames of a pack (payload, decompressed size), per frame its blobs'
    (offset, size), and the frames' offsets. Reads the pack's frame and blob tables
    (internals, read-only)."""
    with atpack.open(path) as pack:
        frames = list(pack._frames)
        spans: list[list[tuple[int, int]]] = [[] for _ in frames]
        for entry in pack._blobs.values():
            spans[entry.frame].append((entry.offset, entry.size))
    with open(path, "rb") as f:
        payloads = [(os.pread(f.fileno(), fr.length, fr.offset), fr.size) for fr in frames]
    return payloads, spans, [fr.offset for fr in frames]


# --------------------------------------------------------------------------- 1. small records


def bench_records(
    settings: Settings, env: atpack.Environment, artifacts: list[Any], raws: list[bytes], tmp: Path
) -> dict[str, Any]:
    level = DEFAULT_LEVEL
    pack_path = tmp / "records.atpack"
    cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)
    dctx = zstandard.ZstdDecompressor()
    paths = [a.path.encode() for a in artifacts]
    canonicals = [canonical(a) for a in artifacts]
    sorted_canonical = sorted(canonicals, key=digest_bytes)  # the order of the pack's index
    typed = msgspec.json.Decoder(atpack.InductorBestConfig)
    state: dict[str, Any] = {}

    def pack_write(out: Any = None) -> None:
        writer = atpack.PackWriter(out or Sink(), level=level)
        writer.add_environment(env)
        for a in artifacts:
            writer.add(a)
        state["info"] = writer.finish()

    with open(pack_path, "wb") as f:
        pack_write(f)

    def pack_open() -> None:
        with atpack.open(pack_path) as pack:
            state["opened"] = len(pack.artifacts)

    def stream_write() -> None:
        state["stream"] = cctx.compress(b"\n".join(raws))

    def stream_with_paths_write() -> None:
        state["stream_paths"] = cctx.compress(b"".join(p + b"\n" + r + b"\n" for p, r in zip(paths, raws)))

    def stream_canonical_write() -> None:
        state["stream_canonical"] = cctx.compress(b"\n".join(sorted_canonical))

    def stream_canonical_read_typed() -> None:
        data = dctx.decompress(state["stream_canonical"])
        state["typed"] = [typed.decode(line) for line in data.split(b"\n")]

    def stream_read() -> None:
        dctx.decompress(state["stream"])

    def stream_read_parse() -> None:
        state["parsed"] = [msgspec.json.decode(line) for line in dctx.decompress(state["stream"]).split(b"\n")]

    def frames_write() -> None:
        state["frames"] = [cctx.compress(r) for r in raws]

    def frames_read() -> None:
        for fr in state["frames"]:
            dctx.decompress(fr)

    def frames_read_parse() -> None:
        state["parsed"] = [msgspec.json.decode(dctx.decompress(fr)) for fr in state["frames"]]

    writes = timed_rounds(
        {
            "pack": lambda: pack_write(),
            "zstd_stream": stream_write,
            "zstd_stream_with_paths": stream_with_paths_write,
            "zstd_stream_canonical": stream_canonical_write,
            "zstd_frame_per_record": frames_write,
        },
        settings.runs,
    )
    reads = timed_rounds(
        {
            "pack_open": pack_open,
            "zstd_stream_decompress": stream_read,
            "zstd_stream_decompress_parse": stream_read_parse,
            "zstd_frame_per_record_decompress": frames_read,
            "zstd_frame_per_record_decompress_parse": frames_read_parse,
            "zstd_stream_canonical_decompress_typed": stream_canonical_read_typed,
        },
        settings.runs,
    )
    if state["opened"] != len(artifacts) or len(state["parsed"]) != len(raws) or len(state["typed"]) != len(raws):
        raise SystemExit("records round trip failed")
    pack_size = pack_path.stat().st_size
    _, index_length, index_size = read_footer(pack_path)
    stream_size = len(state["stream"])
    frames_size = sum(len(f) for f in state["frames"])
    canonical_bytes = sum(len(c) for c in canonicals)
    profile = profile_top(pack_open, 10)
    return {
        "records": len(artifacts),
        "level": level,
        "raw_file_bytes": sum(len(r) for r in raws),
        "mean_file_bytes": round(sum(len(r) for r in raws) / len(raws), 1),
        "canonical_artifact_bytes": canonical_bytes,
        "index_bytes_uncompressed": index_size,
        "sizes": {
            "pack": pack_size,
            "pack_index_compressed": index_length,
            "zstd_stream": stream_size,
            "zstd_stream_with_paths": len(state["stream_paths"]),
            "zstd_stream_canonical": len(state["stream_canonical"]),
            "zstd_frame_per_record": frames_size,
        },
        "size_ratios": {
            "pack_vs_zstd_stream": ratio(pack_size, stream_size),
            "pack_vs_zstd_stream_with_paths": ratio(pack_size, len(state["stream_paths"])),
            "pack_vs_zstd_stream_canonical": ratio(pack_size, len(state["stream_canonical"])),
            "zstd_frame_per_record_vs_zstd_stream": ratio(frames_size, stream_size),
            "zstd_frame_per_record_vs_pack": ratio(frames_size, pack_size),
        },
        "write": {k: stat(v) for k, v in writes.items()},
        "read": {k: stat(v) for k, v in reads.items()},
        "per_record_us": {
            "pack_write": round(med(writes["pack"]) / len(raws) * 1e6, 2),
            "pack_open": round(med(reads["pack_open"]) / len(raws) * 1e6, 2),
        },
        "profile_pack_open": profile,
        "notes": [
            "zstd_stream: the .best_config files joined with newlines, one zstd frame, same level; "
            "the files do not hold their paths (32 random bytes each), which the pack must",
            "zstd_stream_with_paths: each file preceded by its relative path (what a tar of the folder holds)",
            "zstd_stream_canonical: the artifacts' canonical JSON, in the index's order (by digest); "
            "read: decompress + typed msgspec decode, without the pack's checks",
            "zstd_frame_per_record: one zstd frame per file (content size and checksum, as in a pack)",
            "pack write: PackWriter into a null stream (CPU only); open: atpack.open of a local file + every artifact "
            "decoded, validated, re-encoded canonically and digested",
            "parse: msgspec.json.decode of each record, untyped (cheaper than the pack's typed checks)",
        ],
    }


# --------------------------------------------------------------------------- 2. 200 MB of blobs


def bench_blobs(settings: Settings, blobs: list[Blob], composition: dict, tmp: Path) -> dict[str, Any]:
    level = DEFAULT_LEVEL
    pack_path = tmp / "blobs.atpack"
    plain_path = tmp / "blobs.zst"
    raw_bytes = sum(len(b.data) for b in blobs)
    digests = [b.digest for b in blobs]
    dctx = zstandard.ZstdDecompressor()
    state: dict[str, Any] = {}

    def pack_write(out: Any = None) -> None:
        writer = atpack.PackWriter(out or Sink(), level=level)
        for b in blobs:
            writer.add_blob(b.data, hint=b.hint)
        state["info"] = writer.finish()

    def plain_write(out: Any = None) -> None:
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
        with cctx.stream_writer(out or Sink(), size=raw_bytes, closefd=False) as w:
            for b in blobs:
                w.write(b.data)

    with open(pack_path, "wb") as f:
        pack_write(f)
    with open(plain_path, "wb") as f:
        plain_write(f)
    writes = timed_rounds({"pack": lambda: pack_write(), "zstd_stream": lambda: plain_write()}, settings.write_runs)
    info = state["info"]

    # correctness and storage order, once, outside the timings
    with atpack.open(pack_path) as pack:
        got = {}
        storage_order = []
        for d, data in pack.read_blobs(digests):
            storage_order.append(d)
            got[d] = len(data)
    if got != {b.digest: len(b.data) for b in blobs}:
        raise SystemExit("blob round trip failed")
    shuffled = list(digests)
    random.Random(settings.seed).shuffle(shuffled)
    payloads, spans, offsets = frame_payloads(pack_path)
    compressed_frame_bytes = sum(len(p) for p, _ in payloads)

    def read_blobs() -> None:
        with atpack.open(pack_path) as pack:
            for _ in pack.read_blobs(digests):
                pass

    def read_blob_storage_order() -> None:
        with atpack.open(pack_path) as pack:
            for d in storage_order:
                pack.read_blob(d)

    def floor() -> None:
        """zstd decompression + sha256 of the decompressed bytes, frame by frame, in memory."""
        for payload, size in payloads:
            data = dctx.decompress(payload, max_output_size=size)
            hashlib.sha256(data).digest()

    def floor_per_blob() -> None:
        """As `floor`, but sha256 per blob (what verifying blob digests needs)."""
        for (payload, size), frame_spans in zip(payloads, spans):
            view = memoryview(dctx.decompress(payload, max_output_size=size))
            for offset, length in frame_spans:
                hashlib.sha256(view[offset : offset + length]).digest()

    def format_work() -> None:
        """Everything format 1 asks of a reader, with no Python around it: pread, sha256 of the
        compressed frame, decompression, sha256 per blob, a bytes copy of each blob."""
        with open(pack_path, "rb") as f:
            fd = f.fileno()
            for (payload, size), frame_spans, offset in zip(payloads, spans, offsets):
                hashlib.sha256(os.pread(fd, len(payload), offset)).digest()
                data = dctx.decompress(payload, max_output_size=size)
                for offset, length in frame_spans:
                    hashlib.sha256(data[offset : offset + length]).hexdigest()

    def plain_read() -> None:
        with open(plain_path, "rb") as f, dctx.stream_reader(f) as r:
            while r.read(4 * MIB):
                pass

    def pack_open() -> None:
        atpack.open(pack_path).close()

    reads = timed_rounds(
        {
            "pack_read_blobs": read_blobs,
            "pack_read_blob_storage_order": read_blob_storage_order,
            "floor_decompress_sha256": floor,
            "floor_decompress_sha256_per_blob": floor_per_blob,
            "format_work_no_python": format_work,
            "zstd_stream_decompress": plain_read,
            "pack_open": pack_open,
        },
        settings.runs,
    )

    # read_blob out of storage order: each blob of a shared frame may cost its whole frame again.
    # Add order is artifact order (kernel by kernel, a file of each hint): what copy_from does.
    def read_blob_in(order: list[str], frame_cache: int = 4) -> Callable[[], None]:
        def run() -> None:
            with atpack.Pack(storage.open_source(pack_path), frame_cache=frame_cache) as pack:
                for d in order:
                    pack.read_blob(d)

        return run

    read_blob_random_order = read_blob_in(shuffled)
    random_runs = timed_rounds(
        {
            "pack_read_blob_add_order": read_blob_in(digests),
            "pack_read_blob_add_order_frame_cache_16": read_blob_in(digests, 16),
            "pack_read_blob_random_order": read_blob_random_order,
        },
        max(1, (settings.runs + 1) // 2),
    )

    floor_s = med(reads["floor_decompress_sha256"])
    read_s = med(reads["pack_read_blobs"])
    target_ok = read_s <= 2 * floor_s
    peak = {
        "read_blobs_traced_peak_bytes": traced_peak(read_blobs),
        "largest_frame_bytes": max(size for _, size in payloads),
        "compressed_bytes": compressed_frame_bytes,
    }
    return {
        "level": level,
        "group_size": DEFAULT_GROUP_SIZE,
        "composition": composition,
        "raw_bytes": raw_bytes,
        "pack": {
            "size": info.size,
            "frames": info.frames,
            "blobs": info.blobs,
            "compressed_frame_bytes": compressed_frame_bytes,
            "index_compressed": read_footer(pack_path)[1],
        },
        "zstd_stream_size": plain_path.stat().st_size,
        "size_ratios": {
            "pack_vs_zstd_stream": ratio(info.size, plain_path.stat().st_size),
            "raw_vs_pack": ratio(raw_bytes, info.size),
            "raw_vs_zstd_stream": ratio(raw_bytes, plain_path.stat().st_size),
        },
        "write": {k: stat(v) for k, v in writes.items()},
        "write_mb_s": {k: mb_s(raw_bytes, med(v)) for k, v in writes.items()},
        "read": {k: stat(v) for k, v in (reads | random_runs).items()},
        "read_mb_s": {k: mb_s(raw_bytes, med(v)) for k, v in (reads | random_runs).items() if k != "pack_open"},
        "read_vs_floor": {
            "read_blobs": ratio(read_s, floor_s),
            "read_blob_storage_order": ratio(med(reads["pack_read_blob_storage_order"]), floor_s),
            "read_blob_add_order": ratio(med(random_runs["pack_read_blob_add_order"]), floor_s),
            "read_blob_add_order_frame_cache_16": ratio(
                med(random_runs["pack_read_blob_add_order_frame_cache_16"]), floor_s
            ),
            "read_blob_random_order": ratio(med(random_runs["pack_read_blob_random_order"]), floor_s),
            "floor_per_blob": ratio(med(reads["floor_decompress_sha256_per_blob"]), floor_s),
            "format_work_no_python": ratio(med(reads["format_work_no_python"]), floor_s),
            "target": 2.0,
            "read_blobs_within_target": target_ok,
        },
        "read_blobs_memory": peak,
        "profile_read_blobs": profile_top(read_blobs),
        "profile_read_blob_random_order": profile_top(read_blob_random_order, 8),
        "notes": [
            "zstd_stream: the same unique blobs, in the order added, through one zstd stream at the same level "
            "(its size pledged up front, so zstd picks its parameters for 200 MB, not for 1 MiB frames)",
            "writes go to a null stream (CPU only); the pack writer still spools blobs to a temporary file",
            "floor: decompress (zstandard, max_output_size as atpack passes) + sha256 of each decompressed frame, "
            "compressed frames already in memory; the pack's reads include pread, frame sha256, per-blob sha256",
            "read_blob orders: storage order (as read_blobs yields), add order (kernel by kernel, as copy_from "
            "reads), a seeded shuffle; Pack's frame cache holds 4 frames unless frame_cache says otherwise",
            "read_blobs_memory: tracemalloc peak during one read_blobs pass that drops each blob",
            "files are in the page cache: this measures CPU, not the disk",
        ],
    }


# --------------------------------------------------------------------------- 3. compression options


def layout(blobs: list[Blob], group_size: int, by_hint: bool) -> list[list[Blob]]:
    """Frames as PackWriter forms them: blobs sorted by (hint, digest) or by digest; a blob
    larger than the group size gets a frame of its own; others fill frames up to group_size."""
    key: Callable[[Blob], Any] = (lambda b: (b.hint, b.digest)) if by_hint else (lambda b: b.digest)
    frames: list[list[Blob]] = []
    group: list[Blob] = []
    size = 0
    for b in sorted(blobs, key=key):
        if len(b.data) > group_size:
            if group:
                frames.append(group)
                group, size = [], 0
            frames.append([b])
            continue
        if group and size + len(b.data) > group_size:
            frames.append(group)
            group, size = [], 0
        group.append(b)
        size += len(b.data)
    if group:
        frames.append(group)
    return frames


@dataclasses.dataclass
class Option:
    name: str
    frames: list[list[Blob]]
    level: int
    dictionary: zstandard.ZstdCompressionDict | None = None
    runs: int = 1
    long_distance: bool = False  # zstd's long-distance matching over a window as large as the frame


def evaluate(option: Option, blobs: list[Blob], seed: int, samples: int) -> dict[str, Any]:
    dctx = zstandard.ZstdDecompressor(dict_data=option.dictionary)
    joined = [b"".join(b.data for b in frame) for frame in option.frames]
    out: list[bytes] = []

    def compressor(size: int) -> zstandard.ZstdCompressor:
        if option.long_distance:  # as the pack writer does
            window_log = max(10, min(27, (size - 1).bit_length()))
            params = zstandard.ZstdCompressionParameters.from_level(
                option.level, enable_ldm=True, window_log=window_log, write_content_size=True, write_checksum=True
            )
            return zstandard.ZstdCompressor(compression_params=params)
        return zstandard.ZstdCompressor(
            level=option.level, write_content_size=True, write_checksum=True, dict_data=option.dictionary
        )

    def compress() -> None:
        out[:] = [compressor(len(j)).compress(j) for j in joined]

    times = timed_rounds({"compress": compress}, option.runs)["compress"]
    raw = sum(len(j) for j in joined)
    compressed = sum(len(c) for c in out)
    dict_bytes = len(option.dictionary.as_bytes()) if option.dictionary else 0

    # random access to one blob: fetch its frame, decompress all of it, slice, check its digest
    where: dict[str, tuple[int, int, int]] = {}
    for i, frame in enumerate(option.frames):
        offset = 0
        for b in frame:
            where[b.digest] = (i, offset, len(b.data))
            offset += len(b.data)
    fetch = [len(out[where[b.digest][0]]) for b in blobs]
    decompress = [len(joined[where[b.digest][0]]) for b in blobs]
    # at most ~256 MiB decompressed per pass: one stream of everything costs a lot per access
    samples = max(5, min(samples, (256 * MIB) // max(1, int(statistics.fmean(decompress)))))
    picks = random.Random(seed).choices(blobs, k=samples)  # the same blobs for every option

    def access() -> None:
        for b in picks:
            i, offset, size = where[b.digest]
            data = dctx.decompress(out[i], max_output_size=len(joined[i]))
            if hashlib.sha256(data[offset : offset + size]).hexdigest() != b.digest[7:]:
                raise SystemExit(f"{option.name}: wrong bytes")

    access_times = timed_rounds({"access": access}, 5)["access"]
    return {
        "option": option.name,
        "level": option.level,
        "frames": len(out),
        "compressed_bytes": compressed,
        "dictionary_bytes": dict_bytes,
        "ratio": ratio(raw, compressed + dict_bytes),
        "compress": stat(times),
        "compress_mb_s": mb_s(raw, med(times)),
        "random_access": {
            "median_fetch_bytes": round(statistics.median(fetch)),
            "mean_fetch_bytes": round(statistics.fmean(fetch)),
            "max_fetch_bytes": max(fetch),
            "median_decompress_bytes": round(statistics.median(decompress)),
            "mean_decompress_bytes": round(statistics.fmean(decompress)),
            "max_decompress_bytes": max(decompress),
            "first_access_extra_fetch_bytes": dict_bytes,
            "median_us": round(med(access_times) / samples * 1e6, 1),
            "samples": samples,
        },
    }


def bench_options(settings: Settings, name: str, blobs: list[Blob], level19_digest_order: bool) -> dict[str, Any]:
    raw = sum(len(b.data) for b in blobs)
    one_hint = len({b.hint for b in blobs}) == 1
    samples = settings.access_samples
    results: list[dict[str, Any]] = []

    def run(option: Option) -> None:
        option.runs = 1 if option.level >= 19 else settings.option_runs
        r = evaluate(option, blobs, settings.seed, samples)
        results.append(r)
        print(
            f"    {name:>12} {r['option']:<34} L{r['level']:<2} ratio {r['ratio']:7.3f} "
            f"fetch {r['random_access']['mean_fetch_bytes']:>9,} B  "
            f"compress {r['compress']['median_s']:.3f} s",
            flush=True,
        )

    per_blob = [[b] for b in sorted(blobs, key=lambda b: b.digest)]
    run(Option("frame per blob", per_blob, DEFAULT_LEVEL))
    for group_size in GROUP_SIZES:
        for by_hint in (False, True):
            if by_hint and one_hint:
                continue  # one hint: (hint, digest) order is digest order
            levels = LEVELS if (by_hint or one_hint or level19_digest_order) else LEVELS[:2]
            if settings.quick and group_size != DEFAULT_GROUP_SIZE:
                levels = tuple(lv for lv in levels if lv < 19)
            order = "hint,digest" if by_hint else ("digest = hint,digest" if one_hint else "digest")
            for level in levels:
                run(Option(f"grouped {group_size // KIB} KiB, {order}", layout(blobs, group_size, by_hint), level))
    run(Option("one stream", [sorted(blobs, key=lambda b: (b.hint, b.digest))], DEFAULT_LEVEL))
    default = f"grouped {DEFAULT_GROUP_SIZE // MIB} MiB, hint,digest, long-distance matching (the default)"
    run(Option(default, layout(blobs, DEFAULT_GROUP_SIZE, True), DEFAULT_LEVEL, long_distance=True))

    # trained dictionary, frame per blob: trained on all blobs (optimistic) and on half (held out)
    samples_data = [b.data for b in blobs if b.data]
    train_times = timed_rounds(
        {"train": lambda: zstandard.train_dictionary(DICT_SIZE, samples_data)}, max(1, settings.option_runs // 2)
    )["train"]
    dictionary = zstandard.train_dictionary(DICT_SIZE, samples_data)
    run(Option("dictionary, frame per blob", per_blob, DEFAULT_LEVEL, dictionary))
    dict_result = results[-1]
    dict_result["training"] = {
        **stat(train_times),
        "samples": len(samples_data),
        "dict_size": DICT_SIZE,
        "k": dictionary.k,
        "d": dictionary.d,
    }

    train = [b for b in blobs if int(b.digest[-1], 16) % 2 == 0]
    test = [b for b in blobs if int(b.digest[-1], 16) % 2 == 1]
    held_dict = zstandard.train_dictionary(DICT_SIZE, [b.data for b in train if b.data])
    test_raw = sum(len(b.data) for b in test)
    plain = zstandard.ZstdCompressor(level=DEFAULT_LEVEL, write_content_size=True, write_checksum=True)
    with_dict = zstandard.ZstdCompressor(
        level=DEFAULT_LEVEL, write_content_size=True, write_checksum=True, dict_data=held_dict
    )
    test_plain = sum(len(plain.compress(b.data)) for b in test)
    test_dict = sum(len(with_dict.compress(b.data)) for b in test)
    dict_result["held_out"] = {
        "split": "trained on blobs whose digest ends in an even hex digit, measured on the others",
        "test_blobs": len(test),
        "ratio_frame_per_blob": ratio(test_raw, test_plain),
        "ratio_dictionary_without_dict_bytes": ratio(test_raw, test_dict),
        "ratio_dictionary_with_dict_bytes": ratio(test_raw, test_dict + len(held_dict.as_bytes())),
    }
    sizes = sorted(len(b.data) for b in blobs)
    return {
        "blobs": len(blobs),
        "raw_bytes": raw,
        "median_blob_bytes": sizes[len(sizes) // 2],
        "hints": sorted({b.hint for b in blobs}),
        "access_samples": samples,
        "options": results,
    }


# --------------------------------------------------------------------------- report


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def ms(s: dict[str, Any]) -> str:
    return f"{s['median_s'] * 1e3:,.1f} ms"


def markdown(results: dict[str, Any], command: str) -> str:
    m, r, b = results["machine"], results["records"], results["blobs"]
    c = b["composition"]
    st = results["settings"]
    lines = [
        "# Pack format benchmark",
        "",
        f"`{command}` — {m['date_utc']}, commit `{m['git_commit'][:12]}`"
        + (" (atpack/ had local changes)" if m["atpack_tree_dirty"] else ""),
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, zstandard {m['zstandard']} "
        f"(zstd {m['zstd_library']}), msgspec {m['msgspec']}. Medians of {st['runs']} interleaved "
        f"runs ({st['write_runs']} for the 200 MB writes, {st['option_runs']} for section 3, 1 at level 19); every "
        "run is in `bench_format.json`. Writes go to a null stream, reads come from the page cache: CPU, not disk.",
        "",
        f"## 1. {r['records']:,} small records (`InductorBestConfig`, level {r['level']})",
        "",
        f"{r['records']:,} `.best_config` files, {human(r['raw_file_bytes'])} ({r['mean_file_bytes']:.0f} B each).",
        "",
        "| | size | write | read |",
        "|---|---:|---:|---:|",
        f"| pack (open = index + decode of every artifact) | {human(r['sizes']['pack'])} | {ms(r['write']['pack'])} "
        f"| {ms(r['read']['pack_open'])} |",
        f"| zstd, one stream (decompress / + parse) | {human(r['sizes']['zstd_stream'])} "
        f"| {ms(r['write']['zstd_stream'])} | {ms(r['read']['zstd_stream_decompress'])} / "
        f"{ms(r['read']['zstd_stream_decompress_parse'])} |",
        f"| zstd, one stream with each file's path | {human(r['sizes']['zstd_stream_with_paths'])} "
        f"| {ms(r['write']['zstd_stream_with_paths'])} | |",
        f"| zstd, one stream of the canonical artifacts (decompress + typed decode) "
        f"| {human(r['sizes']['zstd_stream_canonical'])} | {ms(r['write']['zstd_stream_canonical'])} "
        f"| {ms(r['read']['zstd_stream_canonical_decompress_typed'])} |",
        f"| zstd, one frame per record (decompress / + parse) | {human(r['sizes']['zstd_frame_per_record'])} "
        f"| {ms(r['write']['zstd_frame_per_record'])} | {ms(r['read']['zstd_frame_per_record_decompress'])} / "
        f"{ms(r['read']['zstd_frame_per_record_decompress_parse'])} |",
        "",
        f"Pack / stream size: **{r['size_ratios']['pack_vs_zstd_stream']}x** (with paths: "
        f"{r['size_ratios']['pack_vs_zstd_stream_with_paths']}x, canonical artifacts: "
        f"{r['size_ratios']['pack_vs_zstd_stream_canonical']}x); frame per record / stream: "
        f"**{r['size_ratios']['zstd_frame_per_record_vs_zstd_stream']}x**. Per record: write "
        f"{r['per_record_us']['pack_write']} µs, open {r['per_record_us']['pack_open']} µs.",
        "",
        f"## 2. {human(b['raw_bytes'])} of blobs (level {b['level']}, group size {human(b['group_size'])})",
        "",
        f"{c['blobs']:,} unique blobs: the sample's kernel files x{c['kernel_file_copies']} "
        f"(mutated copies, {human(c['compressible_bytes'])}) + {c['random_blobs']} "
        f"random blobs ({human(c['random_bytes'])}). Pack: {b['pack']['frames']} frames.",
        "",
        "| | size | write MB/s |",
        "|---|---:|---:|",
        f"| pack | {human(b['pack']['size'])} | {b['write_mb_s']['pack']} |",
        f"| zstd, one stream | {human(b['zstd_stream_size'])} | {b['write_mb_s']['zstd_stream']} |",
        "",
        f"Pack / stream size: **{b['size_ratios']['pack_vs_zstd_stream']}x** "
        f"(raw / pack {b['size_ratios']['raw_vs_pack']}x).",
        "",
        "| read (MB/s of raw blob bytes) | median | MB/s | / floor |",
        "|---|---:|---:|---:|",
    ]
    floor = b["read"]["floor_decompress_sha256"]["median_s"]
    for key, label in (
        ("pack_read_blobs", "`Pack.read_blobs`, all blobs"),
        ("pack_read_blob_storage_order", "`Pack.read_blob` one by one, storage order"),
        ("pack_read_blob_add_order", "`Pack.read_blob` one by one, add order (as `copy_from`)"),
        ("pack_read_blob_add_order_frame_cache_16", "same, `Pack(frame_cache=16)`"),
        ("pack_read_blob_random_order", "`Pack.read_blob` one by one, random order"),
        ("floor_decompress_sha256", "**floor**: decompress + sha256 per frame"),
        ("floor_decompress_sha256_per_blob", "decompress + sha256 per blob"),
        ("format_work_no_python", "format work without Python (pread, frame sha, per-blob sha, copy)"),
        ("zstd_stream_decompress", "zstd stream decompress (no hashing)"),
    ):
        s = b["read"][key]["median_s"]
        lines.append(f"| {label} | {s * 1e3:,.1f} ms | {b['read_mb_s'][key]} | {s / floor:.2f}x |")
    v = b["read_vs_floor"]
    lines += [
        "",
        f"Target, read within 2x of the floor: **{'met' if v['read_blobs_within_target'] else 'NOT met'}** "
        f"(read_blobs {v['read_blobs']}x). Peak memory of a `read_blobs` pass (tracemalloc): "
        f"{human(b['read_blobs_memory']['read_blobs_traced_peak_bytes'])} (pack: "
        f"{human(b['read_blobs_memory']['compressed_bytes'])} compressed, largest frame "
        f"{human(b['read_blobs_memory']['largest_frame_bytes'])}).",
        "",
        "Where `read_blobs` spends its time (cProfile, own time):",
        "",
    ]
    for row in b["profile_read_blobs"][:6]:
        lines.append(
            f"- {row['function']}: {row['own_s'] * 1e3:,.0f} ms ({row['own_share']:.0%}), {row['calls']} calls"
        )
    lines += ["", "## 3. Compression options for many small files", ""]
    for name, o in results["options"].items():
        lines += [
            f"### {name}: {o['blobs']:,} blobs, {human(o['raw_bytes'])}, median {human(o['median_blob_bytes'])}",
            "",
            "| option | level | ratio | frames | compress MB/s | one blob: fetch (median / mean) "
            "| decompress (median / mean) | µs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for x in o["options"]:
            ra = x["random_access"]
            once = ra["first_access_extra_fetch_bytes"]
            extra = f" (+{human(once)} once)" if once else ""
            lines.append(
                f"| {x['option']} | {x['level']} | {x['ratio']} | {x['frames']:,} | {x['compress_mb_s']} | "
                f"{human(ra['median_fetch_bytes'])} / {human(ra['mean_fetch_bytes'])}{extra} | "
                f"{human(ra['median_decompress_bytes'])} / {human(ra['mean_decompress_bytes'])} | {ra['median_us']} |"
            )
        d = next(x for x in o["options"] if x["option"].startswith("dictionary"))
        h = d["held_out"]
        lines += [
            "",
            f"Dictionary ({human(d['dictionary_bytes'])}, ratio includes it): training "
            f"{d['training']['median_s']:.2f} s on {d['training']['samples']:,} samples; held out: frame per blob "
            f"{h['ratio_frame_per_blob']}x, with dictionary {h['ratio_dictionary_with_dict_bytes']}x "
            f"({h['ratio_dictionary_without_dict_bytes']}x without counting it).",
            "",
        ]
    lines += ["## Findings", ""] + [f"- {f}" for f in results.get("findings", [])]
    return "\n".join(lines) + "\n"


def findings(results: dict[str, Any]) -> list[str]:
    r, b, out = results["records"], results["blobs"], []
    out.append(
        f"{r['records']:,} records: pack {human(r['sizes']['pack'])} vs one zstd stream "
        f"{human(r['sizes']['zstd_stream'])} ({r['size_ratios']['pack_vs_zstd_stream']}x) vs a frame per record "
        f"{human(r['sizes']['zstd_frame_per_record'])} ({r['size_ratios']['zstd_frame_per_record_vs_zstd_stream']}x "
        f"the stream); open {ms(r['read']['pack_open'])}, write {ms(r['write']['pack'])}. Against a stream that "
        f"also holds each file's path (information the pack must keep): "
        f"{r['size_ratios']['pack_vs_zstd_stream_with_paths']}x."
    )
    v = b["read_vs_floor"]
    out.append(
        f"Blobs: write {b['write_mb_s']['pack']} MB/s (plain zstd {b['write_mb_s']['zstd_stream']} MB/s); "
        f"read_blobs {b['read_mb_s']['pack_read_blobs']} MB/s = {v['read_blobs']}x the floor "
        f"({b['read_mb_s']['floor_decompress_sha256']} MB/s); "
        f"size {b['size_ratios']['pack_vs_zstd_stream']}x plain zstd; read_blobs peak memory "
        f"{human(b['read_blobs_memory']['read_blobs_traced_peak_bytes'])}."
    )
    out.append(
        f"read_blob one by one in add order (what copy_from does, kernel by kernel): {v['read_blob_add_order']}x "
        f"the floor; with frame_cache=16: {v['read_blob_add_order_frame_cache_16']}x; random order "
        f"{v['read_blob_random_order']}x. Each blob whose frame is not cached costs its whole frame (sha256 of "
        "the compressed frame + decompression); a bigger cache barely helps, since a kernel's files lie in one "
        "frame per hint and consecutive kernels in other frames of those hints. Reading many artifacts' blobs "
        f"through one read_blobs call costs {v['read_blobs']}x."
    )
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer runs")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 5; 3 with --quick)")
    parser.add_argument("--out", type=Path, help="folder for bench_format.json/.md (default tools/results)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.runs:
        settings = dataclasses.replace(settings, runs=args.runs, option_runs=args.runs)
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="bench-format-")) if settings.quick else RESULTS)
    command = "python tools/bench_format.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")

    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-format-work-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rng = random.Random(settings.seed)
        env = environment_from_json(SAMPLE_ENV.read_bytes())
        print(f"unpacking the sample into {work}", flush=True)
        sample = unpack_sample(work)
        kernel, kernel_files = kernel_blobs(sample, env.digest)
        artifacts, raws = best_config_records(settings.records, rng, work / "records" / "inductor", env.digest)
        results: dict[str, Any] = {
            "benchmark": "atpack pack format 1",
            "command": command,
            "settings": dataclasses.asdict(settings),
            "machine": machine_facts(),
        }

        print(f"1. {len(artifacts):,} small records", flush=True)
        results["records"] = bench_records(settings, env, artifacts, raws, work)
        print(f"   done at {time.perf_counter() - started:.0f} s", flush=True)

        print(f"2. {human(settings.blob_bytes)} of blobs", flush=True)
        big, composition = big_blob_set(kernel, settings.blob_bytes, settings.random_share, rng)
        results["blobs"] = bench_blobs(settings, big, composition, work)
        del big
        print(f"   done at {time.perf_counter() - started:.0f} s", flush=True)

        print("3. compression options", flush=True)
        record_blobs = [Blob(digest_bytes(r), r, ".best_config") for r in raws]
        results["options"] = {
            "kernel files": {
                "files": kernel_files,
                **bench_options(settings, "kernel files", kernel, level19_digest_order=False),
            },
            f"{len(raws):,} records": bench_options(settings, "records", record_blobs, level19_digest_order=True),
        }
        results["findings"] = findings(results)
        results["elapsed_s"] = round(time.perf_counter() - started, 1)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_format.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "bench_format.md").write_text(markdown(results, command))
    print(f"\n{markdown(results, command)}")
    print(f"wrote {out_dir / 'bench_format.json'} and {out_dir / 'bench_format.md'} ({results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
