"""Coverage-guided fuzzing of the pack reader and the Megacache parser (atheris / libFuzzer).

    python tools/fuzz_pack.py TARGET [libFuzzer flags] [CORPUS_DIR...]
        one target under atheris, with libFuzzer's own command line (-max_total_time=60,
        -runs=N, -atheris_runs=N, ...); crashes are written where -artifact_prefix= says
    python tools/fuzz_pack.py --report [--seconds 180] [--targets pack,megacache]
        every target for a fixed time, each in a process of its own, seeded from the committed
        corpus (new inputs go to a temporary folder, never into it); writes
        tools/results/fuzz.md and fuzz.json
    python tools/fuzz_pack.py --write-corpus
        (re)write the seed corpus in tools/fuzz_corpus/
    python tools/fuzz_pack.py --replay FILE...
        run each target on the given inputs once (to reproduce a crash)

Targets (the only exceptions allowed out of atpack are `atpack.AtpackError` subclasses; anything
else is a crash, and so is a blob that does not match its digest):

    pack         the input is a pack: open it, verify() it, read every blob of its table one by
                 one and in one batch, compute the manifest digest and every artifact's summary
    pack-sealed  the input is a pack's frames region and its index JSON, separated by SEPARATOR;
                 the target seals them into a pack (header, zstd index frame, footer with the
                 right offsets and sha256) so that mutations reach the index decoder and the table
                 checks instead of stopping at the footer's sha256; when the JSON parses, it is
                 checked a second time with every frame's sha256 recomputed, so that mutated zstd
                 frames reach the decompressor and the blob digests
    megacache    the input is a Megacache blob, parsed as is and with its CRC32 recomputed (so that
                 mutations get past the checksum); a blob that parses is written back and must
                 parse to the same entries, and its entries must convert to artifacts

Without atheris (it ships Linux wheels only) the same targets run under a small built-in
mutation loop: random bit flips, byte insertions, deletions, duplications, splices of two corpus
inputs and interesting integers, with no coverage feedback (`--engine builtin` forces it).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tools" / "fuzz_corpus"
RESULTS = REPO / "tools" / "results"
VECTORS = REPO / "spec" / "vectors"

SEPARATOR = b"\n\x00--atpack-fuzz-index--\x00\n"
"""Between the frames region and the index JSON in a `pack-sealed` input."""

MAGIC = b"\x89ATPACK\n"
HEADER = struct.Struct("<8sHHI")
FOOTER = struct.Struct("<QQQ32sHHI8s")

TARGETS = ("pack", "pack-sealed", "megacache")
SEED_DIRS = {"pack": "pack", "pack-sealed": "pack", "megacache": "megacache"}
MAX_LEN = {"pack": 16384, "pack-sealed": 16384, "megacache": 4096}

# --------------------------------------------------------------------------- the targets
#
# atpack is imported by `load()`, after atheris has been told to instrument it.

_atpack: Any = None


def load(instrument: bool = False) -> None:
    global _atpack
    if _atpack is not None:
        return
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["atpack"]):
            import atpack
            import atpack.adapters.megacache
            import atpack.pack
    else:
        import atpack
        import atpack.adapters.megacache
        import atpack.pack
    _atpack = atpack


class Mismatch(AssertionError):
    """A read succeeded and returned wrong bytes: as bad as a crash."""


class _BytesSource:
    """A pack in memory, as a `atpack.store.RangeSource`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.name = "<fuzz>"
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.read(o, n) for o, n in ranges]

    def close(self) -> None:
        pass


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_pack(data: bytes) -> str:
    """Open `data` as a pack and read everything in it: verify() it, read every blob of its
    table one by one and in one batch, compute the manifest digest, every artifact's summary
    and blob references. Returns "ok" or where the first atpack error came ("read_blob:
    FormatError"); any other exception escapes (an atpack error too, once the pack is open and
    its blobs read), and a read that returns wrong bytes, or a pack that verifies with a
    referenced blob missing, raises `Mismatch`. (`tests/test_fuzz.py`
    checks the same property with hypothesis, through this function.)"""
    atpack = _atpack
    try:
        pack = atpack.Pack(_BytesSource(data))
    except atpack.AtpackError as e:
        return f"open: {type(e).__name__}"
    outcome = "ok"

    def failed(stage: str, e: Exception) -> None:
        nonlocal outcome
        outcome = outcome if outcome != "ok" else f"{stage}: {type(e).__name__}"

    with pack:
        try:
            pack.verify()
        except atpack.AtpackError as e:
            failed("verify", e)
        digests = sorted(pack._blobs)  # every blob of the table, referenced or not
        for digest in digests:
            try:
                blob = pack.read_blob(digest)
            except atpack.AtpackError as e:
                failed("read_blob", e)
                continue
            if _digest(blob) != digest or len(blob) != pack.blob_size(digest):
                raise Mismatch(f"read_blob({digest}) returned {len(blob)} bytes of digest {_digest(blob)}")
        try:
            for digest, blob in pack.read_blobs(digests):
                if _digest(blob) != digest:
                    raise Mismatch(f"read_blobs gave {digest} as {len(blob)} bytes of digest {_digest(blob)}")
        except atpack.AtpackError as e:
            failed("read_blobs", e)
        _ = pack.digest  # an opened pack's manifest is whole: no error of any kind from here
        for artifact in pack.artifacts:
            artifact.summary()
            list(artifact.blob_refs())
        for env in pack.manifest.environments.values():
            _ = env.digest
        if outcome == "ok" and any(
            not pack.has_blob(ref) for a in pack.artifacts if isinstance(a, atpack.Artifact) for ref in a.blob_refs()
        ):
            raise Mismatch("a pack that verifies references a blob it does not hold")
    return outcome


def seal(frames: bytes, index_json: bytes) -> bytes:
    """A pack made of `frames` and `index_json`, with a header and a footer that fit them."""
    import zstandard

    compressed = zstandard.ZstdCompressor(level=1, write_content_size=True, write_checksum=True).compress(index_json)
    offset = HEADER.size + len(frames)
    footer = FOOTER.pack(offset, len(compressed), len(index_json), hashlib.sha256(compressed).digest(), 1, 0, 0, MAGIC)
    return HEADER.pack(MAGIC, 1, 0, 0) + frames + compressed + footer


def _reseal_frames(pack_body: bytes, index_json: bytes) -> bytes | None:
    """`index_json` with each frame's sha256 recomputed over the bytes it points at, or None
    when it is not JSON with a frame table."""
    try:
        index = json.loads(index_json)
    except (ValueError, RecursionError):
        return None
    if not isinstance(index, dict) or not isinstance(index.get("frames"), list):
        return None
    changed = False
    for frame in index["frames"]:
        if isinstance(frame, list) and len(frame) == 4 and all(type(v) is int and 0 <= v < 1 << 40 for v in frame[:2]):
            frame[3] = hashlib.sha256(pack_body[frame[0] : frame[0] + frame[1]]).hexdigest()
            changed = True
    return json.dumps(index, sort_keys=True, separators=(",", ":")).encode() if changed else None


def check_pack_sealed(data: bytes) -> None:
    frames, _, index_json = data.rpartition(SEPARATOR)
    check_pack(seal(frames, index_json))
    body = HEADER.pack(MAGIC, 1, 0, 0) + frames
    resealed = _reseal_frames(body, index_json)
    if resealed is not None:
        check_pack(seal(frames, resealed))


def with_crc(data: bytes) -> bytes:
    """`data` with its first 4 bytes replaced by the CRC32 of the rest (as torch writes it)."""
    return zlib.crc32(data[4:]).to_bytes(4, "big") + data[4:] if len(data) >= 4 else data


def check_megacache(data: bytes) -> None:
    atpack = _atpack
    mc = atpack.adapters.megacache
    for blob in (data, with_crc(data)):
        try:
            entries = mc.blob_entries(blob)
        except atpack.AtpackError:
            continue
        again = mc.blob_entries(mc.write_blob(entries))
        if again != entries:
            raise Mismatch(f"a blob of {len(entries)} entries written back parses to {len(again)} other entries")
        stored: dict[str, bytes] = {}

        def add_blob(content: bytes, hint: str, stored: dict[str, bytes] = stored) -> str:
            stored[_digest(content)] = content
            return _digest(content)

        for (kind, key, content), artifact in zip(entries, mc.collect(blob, "sha256:" + "0" * 64, add_blob)):
            if artifact.type_name != kind or artifact.entry_key != key or stored[artifact.content] != content:
                raise Mismatch(f"entry {kind} {key!r} became {artifact!r}")


CHECKS: dict[str, Callable[[bytes], object]] = {
    "pack": check_pack,
    "pack-sealed": check_pack_sealed,
    "megacache": check_megacache,
}


def _test_one_input(target: str) -> Callable[[bytes], None]:
    check = CHECKS[target]

    def test_one_input(data: bytes) -> None:
        check(bytes(data))

    return test_one_input


# --------------------------------------------------------------------------- seed corpus


def _mc_blob(entries: Sequence[tuple[str, str, bytes]]) -> bytes:
    """A Megacache blob (written here, not by atpack, so that the seeds do not depend on it)."""

    def put(out: bytearray, raw: bytes) -> None:
        out += struct.pack(">Q", len(raw)) + raw

    import base64

    body = bytearray(struct.pack(">Q", 1))
    sections: list[tuple[str, list[tuple[str, bytes]]]] = []
    for kind, key, content in entries:
        if not sections or sections[-1][0] != kind:
            sections.append((kind, []))
        sections[-1][1].append((key, content))
    for kind, items in sections:
        put(body, base64.b64encode(kind.encode()))
        body += struct.pack(">Q", len(items))
        for key, content in items:
            put(body, base64.b64encode(key.encode()))
            put(body, content)
    return zlib.crc32(body).to_bytes(4, "big") + bytes(body)


def megacache_seeds() -> dict[str, bytes]:
    return {
        "empty.bin": _mc_blob([]),
        "one-autotune.bin": _mc_blob([("autotune", "triton_poi_fused_0", b'{"XBLOCK": 128, "num_warps": 4}')]),
        "three-sections.bin": _mc_blob(
            [
                ("inductor", "fxgraph-abc", b"\x80\x04\x95" + bytes(range(40))),
                ("autotune", "k1", b"{}"),
                ("autotune", "k2", b""),
                ("aot_autograd", "aotgraph-\u00e9", b"x" * 64),
            ]
        ),
        "unknown-type.bin": _mc_blob([("future_kind", "key", b"\x00\x01\x02")]),
        "two-sections-same-type.bin": _mc_blob([("pgo", "a", b"1"), ("precompile", "b", b"2"), ("pgo", "c", b"3")]),
        "truncated.bin": _mc_blob([("autotune", "k", b"0123456789")])[:-5],
    }


def sealed_seed(pack: bytes) -> bytes:
    """A `pack-sealed` input from a valid pack: its frames region and its index JSON."""
    import zstandard

    offset, length, size, *_ = FOOTER.unpack(pack[-FOOTER.size :])
    index_json = zstandard.ZstdDecompressor().decompress(pack[offset : offset + length], max_output_size=size)
    return pack[HEADER.size : offset] + SEPARATOR + index_json


def pack_seeds() -> dict[str, bytes]:
    """The spec's golden vectors (all under 10 KB) and one pack with several frames."""
    seeds = {p.name: p.read_bytes() for p in sorted(VECTORS.glob("*.atpack")) if p.stat().st_size <= MAX_LEN["pack"]}
    load(instrument=False)
    atpack = _atpack
    import io

    out = io.BytesIO()
    writer = atpack.PackWriter(out, group_size=64, level=3)
    env = writer.add_environment(atpack.Environment(triton_version="3.4.0", device_name="NVIDIA H100"))
    names = ["kernel.json", "kernel.ttir", "kernel.ptx", "kernel.cubin"]
    files = [(name, bytes([i]) * (20 + 40 * i) + bytes(range(i * 7 % 50))) for i, name in enumerate(names)]
    from atpack.artifacts import KernelFile

    for name, data in files:
        writer.add_blob(data, hint=name.rsplit(".", 1)[1])
    writer.add(
        atpack.TritonKernel(
            env=env,
            cache_key="c" * 52,
            name="kernel",
            files=tuple(KernelFile(name, _digest(data), len(data)) for name, data in files),
        )
    )
    writer.finish()
    seeds["frames.atpack"] = out.getvalue()
    return seeds


def write_corpus() -> None:
    for folder, seeds in (("pack", pack_seeds()), ("megacache", megacache_seeds())):
        path = CORPUS / folder
        path.mkdir(parents=True, exist_ok=True)
        for old in path.iterdir():
            old.unlink()
        for name, data in seeds.items():
            (path / name).write_bytes(data)
        print(f"{path.relative_to(REPO)}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


def seeds_for(target: str) -> list[bytes]:
    files = sorted((CORPUS / SEED_DIRS[target]).iterdir())
    data = [f.read_bytes() for f in files]
    return [sealed_seed(d) for d in data] if target == "pack-sealed" else data


# --------------------------------------------------------------------------- built-in engine

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 1 << 31, 1 << 32, (1 << 63) - 1, (1 << 64) - 1)


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes], max_len: int) -> bytes:
    """One to four random edits of `data`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:  # flip a bit
            i = min(pos, len(out) - 1)
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:  # set a byte
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 2:  # insert random bytes
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and out:  # delete a range
            del out[pos : pos + rng.randint(1, 32)]
        elif op == 4 and out:  # duplicate a range
            start = rng.randrange(len(out))
            out[pos:pos] = out[start : start + rng.randint(1, 64)]
        elif op == 5:  # splice with another input
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            out = out[:pos] + other[cut:] if rng.random() < 0.5 else bytearray(other[:cut]) + out[pos:]
        elif op == 6:  # an interesting integer, u64 or u32, either byte order
            fmt = rng.choice((">Q", "<Q", ">I", "<I"))
            value = rng.choice(_INTERESTING) & ((1 << (8 * struct.calcsize(fmt))) - 1)
            raw = struct.pack(fmt, value)
            out[pos : pos + len(raw)] = raw
        elif op == 7 and out:  # an ASCII digit or JSON character somewhere (index mutations)
            out[min(pos, len(out) - 1)] = rng.choice(b'0123456789-[]{},:"e.')
    return bytes(out[:max_len])


def run_builtin(target: str, seconds: float, seed: int = 0) -> dict[str, Any]:
    load(instrument=False)
    check = CHECKS[target]
    corpus = seeds_for(target)
    rng = random.Random(seed)
    crashes: list[dict[str, str]] = []
    execs = 0
    slowest = 0.0
    deadline = time.monotonic() + seconds
    for data in corpus:  # the seeds themselves first
        check(data)
        execs += 1
    while time.monotonic() < deadline:
        data = mutate(rng.choice(corpus), rng, corpus, MAX_LEN[target])
        start = time.perf_counter()
        try:
            check(data)
        except Exception as e:
            crashes.append(_crash_record(target, data, e))
        slowest = max(slowest, time.perf_counter() - start)
        execs += 1
    return {"execs": execs, "crashes": crashes, "slowest_s": round(slowest, 4)}


def _crash_record(target: str, data: bytes, e: BaseException) -> dict[str, str]:
    folder = RESULTS / "fuzz_crashes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{target}-{hashlib.sha1(data).hexdigest()[:16]}"
    path.write_bytes(data)
    return {"error": f"{type(e).__name__}: {e}", "input": str(path.relative_to(REPO)), "trace": traceback.format_exc()}


# --------------------------------------------------------------------------- report


def run_atheris(target: str, seconds: int, workdir: Path) -> dict[str, Any]:
    """One target under atheris in a process of its own, for `seconds`."""
    corpus = workdir / "corpus"
    crashes = workdir / "crashes"
    corpus.mkdir()
    crashes.mkdir()
    for i, data in enumerate(seeds_for(target)):
        (corpus / f"seed-{i}").write_bytes(data)
    seeds = len(list(corpus.iterdir()))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        target,
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN[target]}",
        "-timeout=10",  # an input that takes 10 s is a hang
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/",
        str(corpus),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.monotonic() - start
    log = proc.stderr + proc.stdout
    (workdir / "log.txt").write_text(log)
    stats = dict(re.findall(r"^stat::(\w+):\s*(\d+)", log, re.M))
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    crash_files = sorted(crashes.iterdir())
    kept: list[dict[str, str]] = []
    for f in crash_files:
        saved = RESULTS / "fuzz_crashes" / f"{target}-{f.name}"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(f.read_bytes())
        kept.append({"input": str(saved.relative_to(REPO))})
    if crash_files or proc.returncode != 0:
        trace = log[log.find("=== Uncaught Python exception") :][:4000] if "Uncaught Python" in log else log[-4000:]
        kept = kept or [{"input": "", "trace": trace}]
        kept[0]["trace"] = trace
    return {
        "execs": int(stats.get("number_of_executed_units", 0)),
        "execs_per_s": int(stats.get("average_exec_per_sec", 0)),
        "coverage_edges": int(cov[-1][0]) if cov else None,
        "coverage_features": int(cov[-1][1]) if cov else None,
        "seeds": seeds,
        "corpus_after": len(list(corpus.iterdir())),
        "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        "crashes": kept,
    }


def report(seconds: int, targets: Sequence[str], engine: str) -> None:
    results: dict[str, Any] = {}
    for target in targets:
        print(f"fuzzing {target} for {seconds} s ({engine})", flush=True)
        if engine == "atheris":
            with tempfile.TemporaryDirectory(prefix=f"atpack-fuzz-{target}-") as tmp:
                results[target] = run_atheris(target, seconds, Path(tmp))
        else:
            results[target] = run_builtin(target, seconds)
        r = results[target]
        print(f"  {r['execs']} executions, {len(r['crashes'])} crashes", flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "engine": engine,
        "engine_version": _version("atheris") if engine == "atheris" else None,
        "seconds_per_target": seconds,
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
    }
    (RESULTS / "fuzz.json").write_text(json.dumps({"meta": meta, "targets": results}, indent=2) + "\n")
    (RESULTS / "fuzz.md").write_text(_markdown(meta, results))
    print(f"wrote {RESULTS / 'fuzz.md'}")


def _markdown(meta: dict[str, Any], results: dict[str, Any]) -> str:
    engine = (
        f"atheris {meta['engine_version']} (libFuzzer, coverage-guided)"
        if meta["engine"] == "atheris"
        else ("built-in mutation loop (no coverage feedback)")
    )
    lines = [
        "# Fuzzing the pack reader and the Megacache parser",
        "",
        f"`python tools/fuzz_pack.py --report --seconds {meta['seconds_per_target']}` — {meta['date']}, "
        f"commit `{meta['commit']}`",
        "",
        f"Engine: {engine}. Python {meta['python']}, {meta['machine']}. One process per target, "
        f"{meta['seconds_per_target']} s each, seeded from `tools/fuzz_corpus/`; an input running over 10 s "
        "counts as a hang. A crash is any exception other than an `atpack.AtpackError` subclass (any at all "
        "from an opened pack's manifest), a blob read back that does not match its digest, or a pack that "
        "verifies with a referenced blob missing.",
        "",
        "| target | what it runs | executions | exec/s | coverage (edges / features) | corpus (seeds → end) "
        "| crashes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    what = {
        "pack": "open + verify + read every blob (raw bytes)",
        "pack-sealed": "same, index JSON and frames re-sealed (valid footer, frame sha256s)",
        "megacache": "`blob_entries` as is and with a recomputed CRC, round trip, `collect`",
    }
    for target, r in results.items():
        cov = f"{r.get('coverage_edges')} / {r.get('coverage_features')}" if r.get("coverage_edges") else "—"
        corpus = f"{r['seeds']} → {r['corpus_after']}" if "seeds" in r else "—"
        rate = r.get("execs_per_s") or "—"
        lines.append(
            f"| `{target}` | {what[target]} | {r['execs']:,} | {rate} | {cov} | {corpus} | {len(r['crashes'])} |"
        )
    total = sum(r["execs"] for r in results.values())
    crashes = sum(len(r["crashes"]) for r in results.values())
    lines += ["", f"Total: {total:,} executions, {crashes} crashes (unhandled exceptions)."]
    for target, r in results.items():
        for c in r["crashes"]:
            lines += ["", f"### crash in `{target}`: {c.get('input') or '(no input saved)'}", "", "```"]
            lines += [c.get("trace", c.get("error", "")).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- entry point


def main(argv: list[str]) -> None:
    if len(argv) > 1 and argv[1] in TARGETS:  # python tools/fuzz_pack.py TARGET [libFuzzer args]
        target = argv[1]
        if importlib.util.find_spec("atheris") is None:
            sys.exit("atheris is not installed: use --report --engine builtin")
        import atheris

        load(instrument=True)
        atheris.Setup([argv[0], *argv[2:]], _test_one_input(target))
        atheris.Fuzz()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="fuzz every target and write tools/results/fuzz.*")
    parser.add_argument("--seconds", type=int, default=180, help="time per target (default 180)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--engine", choices=("atheris", "builtin"), default=None)
    parser.add_argument("--write-corpus", action="store_true")
    parser.add_argument("--replay", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv[1:])
    if args.write_corpus:
        write_corpus()
    elif args.replay:
        load(instrument=False)
        for path in args.replay:
            for target, check in CHECKS.items():
                try:
                    check(path.read_bytes())
                except Exception:
                    print(f"{path} {target}: CRASH\n{traceback.format_exc()}")
                else:
                    print(f"{path} {target}: ok")
    elif args.report:
        engine = args.engine or ("atheris" if importlib.util.find_spec("atheris") else "builtin")
        targets = [t for t in args.targets.split(",") if t]
        unknown = set(targets) - set(TARGETS)
        if unknown:
            parser.error(f"unknown targets {sorted(unknown)}")
        report(args.seconds, targets, engine)
    else:
        parser.print_help()


if __name__ == "__main__":
    main(sys.argv)
