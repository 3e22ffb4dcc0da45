"""Coverage-guided fuzzing of the pack reader, the Megacache parser and populate (atheris / libFuzzer).

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
    pack-structural
                 the input is a tape of choices (`Tape`): a seed pack (tools/fuzz_corpus/pack/)
                 and up to 4 structural edits of its index as JSON objects and of its blobs
                 (`EDITS`: file names, paths and keys, kind tags with the new kind's fields, free-
                 form pairs that shadow typed fields, duplicated, removed or moved artifacts and
                 environments, references to other blobs, blob contents replaced with every digest,
                 frame and size recomputed, or sizes left lying); the result is built valid at the
                 byte level (`build`: frames, tables, canonical sorted artifacts, sealed index),
                 read whole as `pack` does, then populated (`check_populate`) into a `Site` whose
                 cache folders hold results: a dry run, with both folders named, again, and into
                 torch's and Triton's own folders (HOME and TMPDIR in the site), never trusting
                 pickles. A crash is also: anything created, changed or removed outside the cache
                 folders; an existing file changed or removed (but GEMM timings merged in, a
                 kernel's group file pointed at its own folder); a new file whose name is not one
                 its folder's reader takes as data (`INDUCTOR_FILE`, `TRITON_FILE`); a tuning
                 result whose config its producer never emits (atpack.adapters.configs); a dry run or
                 a second populate that changes anything; an artifact without exactly one outcome;
                 a kind that runs code not skipped; a failure or an error of more than one line

Without atheris (it ships Linux wheels only) the same targets run under a small built-in
mutation loop: random bit flips, byte insertions, deletions, duplications, splices of two corpus
inputs and interesting integers, with no coverage feedback (`--engine builtin` forces it).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import collections
import contextlib
import dataclasses
import datetime
import getpass
import hashlib
import importlib.util
import json
import math
import os
import platform
import random
import re
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import zstandard

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tools" / "fuzz_corpus"
RESULTS = REPO / "tools" / "results"
VECTORS = REPO / "spec" / "vectors"

SEPARATOR = b"\n\x00--atpack-fuzz-index--\x00\n"
"""Between the frames region and the index JSON in a `pack-sealed` input."""

MAGIC = b"\x89ATPACK\n"
HEADER = struct.Struct("<8sHHI")
FOOTER = struct.Struct("<QQQ32sHHI8s")

TARGETS = ("pack", "pack-sealed", "megacache", "pack-structural")
SEED_DIRS = {"pack": "pack", "pack-sealed": "pack", "megacache": "megacache", "pack-structural": "structural"}
MAX_LEN = {"pack": 16384, "pack-sealed": 16384, "megacache": 4096, "pack-structural": 256}

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
            _import_atpack()
    else:
        _import_atpack()
    import atpack

    _atpack = atpack


def _import_atpack() -> None:
    """atpack and every module the targets reach (populate's too), so that atheris instruments them."""
    import atpack
    import atpack.adapters.inductor
    import atpack.adapters.megacache
    import atpack.adapters.triton
    import atpack.autoload
    import atpack.env
    import atpack.errors
    import atpack.files
    import atpack.folders
    import atpack.pack
    import atpack.populate  # noqa: F401


class Mismatch(AssertionError):
    """A read succeeded and returned wrong bytes: as bad as a crash."""


class _BytesSource:
    """A pack in memory, as a `atpack.storage.RangeSource`."""

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


# --------------------------------------------------------------------------- structural mutations
#
# `pack-structural` reads its input as a tape of choices (`Tape`): which seed pack, which edits of
# its content as JSON objects and blobs (`EDITS`), how to lay the result out in frames (`build`).
# The edited pack is written whole and valid at the byte level (every frame's sha256, every blob's
# digest, the index and the footer), so that it gets past the checksums to the index schema, each
# kind's content rules and populate (`check_populate`).

T = TypeVar("T")


class Tape:
    """The fuzzer's input as a sequence of choices. Past its end every choice is the first
    option, so a short input makes a small edit and the engines grow it into larger ones
    (hypothesis shrinks toward zeros, so failures shrink toward the seed packs)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def below(self, n: int) -> int:
        """A number in [0, n)."""
        if n <= 1:
            return 0
        width = 1 if n <= 1 << 8 else 2 if n <= 1 << 16 else 4
        raw = self.data[self.at : self.at + width]
        self.at += width
        return int.from_bytes(raw, "little") % n

    def pick(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]

    def rarely(self, n: int) -> bool:
        """True one time in `n` (never past the end of the tape)."""
        return self.below(n) == n - 1

    def raw(self, most: int) -> bytes:
        n = self.below(most + 1)
        out = self.data[self.at : self.at + n]
        self.at += n
        return out


@dataclasses.dataclass
class Model:
    """A pack as plain data: its index (artifacts and environments as JSON objects) and the
    content of every blob. `build` writes it back as a pack."""

    index: dict[str, Any]
    blobs: dict[str, bytes]

    @classmethod
    def of(cls, pack: bytes) -> Model:
        offset, length, size, *_ = FOOTER.unpack(pack[-FOOTER.size :])
        dctx = zstandard.ZstdDecompressor()
        index = msgspec.json.decode(dctx.decompress(pack[offset : offset + length], max_output_size=size))
        frames = [dctx.decompress(pack[o : o + n], max_output_size=s) for o, n, s, _ in index["frames"]]
        blobs = {digest: frames[f][at : at + n] for digest, f, at, n in index["blobs"]}
        tables = ("annotations", "digested_annotations", "environments", "artifacts")
        return cls({k: index.get(k, {} if k == "annotations" else []) for k in tables}, blobs)

    def copy(self) -> Model:
        return Model(msgspec.json.decode(msgspec.json.encode(self.index)), dict(self.blobs))

    @property
    def artifacts(self) -> list[Any]:
        return self.index["artifacts"]  # type: ignore[no-any-return]

    @property
    def environments(self) -> list[Any]:
        return self.index["environments"]  # type: ignore[no-any-return]

    def add_blob(self, content: bytes) -> str:
        self.blobs[_digest(content)] = content
        return _digest(content)

    def strings(self, field: str) -> list[str]:
        """The values of `field` in every artifact (paths, keys, names), to swap between them."""
        return [a[field] for a in self.artifacts if isinstance(a, dict) and isinstance(a.get(field), str)]


_FRAMES = zstandard.ZstdCompressor(level=1, write_content_size=True, write_checksum=True)


def build(model: Model, tape: Tape) -> bytes:
    """`model` as a pack that is valid at the byte level: its blobs in frames (shared frames of
    up to 256 bytes, a frame each, or one frame for all, as the tape says), the frame and blob
    tables, artifacts as canonical JSON sorted by digest (rarely unsorted), environments sorted
    by digest, and the index sealed (`seal`)."""
    group = tape.pick((256, 0, 1 << 30))
    frames: list[list[Any]] = []
    blobs: list[list[Any]] = []
    region = bytearray()
    pending: list[tuple[str, bytes]] = []

    def flush() -> None:
        raw = b"".join(content for _, content in pending)
        payload = _FRAMES.compress(raw)
        at = 0
        for digest, content in pending:
            blobs.append([digest, len(frames), at, len(content)])
            at += len(content)
        frames.append([HEADER.size + len(region), len(payload), len(raw), hashlib.sha256(payload).hexdigest()])
        region.extend(payload)
        pending.clear()

    for digest in sorted(model.blobs):
        content = model.blobs[digest]
        if pending and sum(len(c) for _, c in pending) + len(content) > group:
            flush()
        pending.append((digest, content))
    if pending:
        flush()
    artifacts = [_canonical(a) for a in model.artifacts]
    if not tape.rarely(16):
        artifacts.sort(key=_digest)
    index = {
        **model.index,
        "artifacts": [msgspec.Raw(a) for a in artifacts],
        "environments": sorted(model.environments, key=lambda e: _digest(_canonical(e))),
        "frames": frames,
        "blobs": blobs,
    }
    return seal(bytes(region), _canonical(index))


def _canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def _leaves(value: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(container, key, value) of every element of every list and object in `value`."""
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            yield node, key, child
            stack.append(child)


def _containers(value: Any) -> list[Any]:
    return [value] + [v for _, _, v in _leaves(value) if isinstance(v, (list, dict))]


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", value) is not None


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _deep(depth: int) -> msgspec.Raw:
    """JSON nested `depth` arrays deep, as text (no encoder writes it past its recursion limit)."""
    return msgspec.Raw(b"[" * depth + b"]" * depth)


HEX = _hex("fuzz")
BASE32 = base64.b32encode(bytes.fromhex(HEX)).decode().rstrip("=")  # 52 characters, a Triton cache key
CUDA_UTILS_KEY = "XU5DT2AO5BD5AEHEYGLPP5LRDFHHCUEJT4LGDVLB4STXUGVGHFPA"
SITE_KEY = "T" * 32
"""The Triton folder that holds a result in every site (`Site`): a key that names it hits it."""
KINDS = (
    "triton.kernel/1",
    "megacache.autotune/1",
    "inductor.best_config/1",
    "triton.autotune/1",
    "inductor.kernel_perf/1",
    "inductor.gemm_timings/1",
    "triton.host_module/1",
    "megacache.inductor/1",
    "megacache.aot_autograd/1",
    "megacache.pgo/1",
    "megacache.precompile/1",
    "megacache.other/1",
)
"""Every kind, those whose files populate writes without trust first (a tape of zeros edits them)."""
SHADOWS = (
    "num_warps",
    "num_stages",
    "num_ctas",
    "maxnreg",
    "configs_hash",
    "found_by_coordesc",
    "time_taken_ms",
    "triton_cache_hash",
    "key",
    "configs_timings",
    "kwargs",
    "extra",
    "pre_hook",
    "ir_override",
    "XBLOCK",
    "BLOCK",
    "ptx_options",
    "extern_libs",
    "arch",
    "grid",
    "waves_per_eu",
)
"""Names that a free-form field (``extra``, ``kwargs``) must not repeat or shadow, and Triton's
compile options, which a config must not set."""


def _megacache_keys(model: Model) -> list[str]:
    """Keys a Megacache entry may name: where torch's `populate_cache()` writes (autotune: the
    Inductor folder joined with the key)."""
    fx = "f" + BASE32.lower()[:51]
    return [
        f"fxgraph/{fx[1:3]}/{fx}/{HEX}.best_config",
        f"aotautograd/{fx[1:3]}/a{fx[1:]}/{HEX}.best_config",
        f"triton/0/{SITE_KEY}/mine.best_config",
        f"{HEX}.best_config",
        f"ab/cd/{HEX}.best_config",
        f"ab/c{BASE32.lower()[:51]}.py",
        f"cache/{HEX}",
        f"locks/{HEX}.atpack.lock",
        "atpack-replay.json",
        "zz/mine.best_config",
        f"ab/{HEX}.best_config",
        *model.strings("path"),
        f"../{HEX}.best_config",
        f"ab/../../outside/{HEX}.best_config",
        f"/{HEX}.best_config",
        f"ab/{HEX}.best_config\x00",
        f"ab//{HEX}.best_config",
        f"./ab/{HEX}.best_config",
        "ab/" + "a" * 300 + ".best_config",
        "a/" * 2100 + "x",
        fx,
    ]


def _identities(field: str, current: Any, model: Model) -> list[Any]:
    """Values for the field that names an artifact's file or folder: other artifacts' values,
    names of what the site holds, shapes off by one, names that climb out."""
    was = current if isinstance(current, str) else ""
    common = [*model.strings(field), was + "x", was[:-1], "../" + was, was + "/..", "", ".."]
    if field == "path":
        return [
            *common,
            f"zz/{HEX}.best_config",
            f"ab/{HEX}.kernel_perf",
            f"ab/c{BASE32.lower()[:51]}.kernel_perf",
            f"ab/{HEX[:63]}.best_config",
            f"ab/{HEX}0.best_config",
            f"AB/{HEX}.best_config",
            f"ab/{HEX.upper()}.best_config",
            f"ab/{HEX}.py",
            f"../{HEX}.best_config",
            f"/{HEX}.best_config",
            f"ab/{HEX}\x00.best_config",
            "zz/mine.best_config",
            "ab/" + "a" * 600 + ".best_config",
        ]
    if field == "cache_key":
        return [*common, SITE_KEY, CUDA_UTILS_KEY, BASE32, "A" * 15, "A" * 16, "A" * 128, "A" * 129, "A" * 20 + "/../B"]
    if field in ("name", "fn_name"):
        return [*common, "mine", "cuda_utils", "triton_", "__grp__x", "k" * 150, "k" * 151, "k" * 250, "k" * 256, "x/y"]
    if field == "key":
        return [*_megacache_keys(model), *common]
    return [*common, "autotune", "inductor", "fxgraph", "a" * 65, "x"]  # megacache.other's type


def _file_names(artifact: dict[str, Any], current: str, model: Model) -> list[str]:
    """Names for a kernel's or host module's file: other backends' files, host code, pickles,
    files of other kinds, names that climb out or that the site holds."""
    name = str(artifact.get("name", "cuda_utils"))
    stem = current.split(".", 1)[0]
    others = [f"{n}.json" for n in model.strings("name") if n != name][:2]
    return [
        f"{name}.so",
        f"{name}.py",
        f"{name}.pkl",
        f"{name}.pt",
        f"{name}.json.so",
        f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}",
        f"{stem}.so",
        "cuda_utils.so",
        "__init__.py",
        f"__grp__{name}.json",
        f"{name}.autotune.json",
        f"{name}.json",
        f"{name}.cubin",
        f"{name}.hsaco",
        f"{name}.ptx",
        f"{name}.JSON",
        name,
        f"{name}..json",
        "../x.cubin",
        "/etc/passwd",
        "a\x00.cubin",
        "x" * 256,
        ".atpack-1-2-3.tmp",
        "mine.json",
        "atpack-replay.json",
        *others,
        current + "x",
        current.upper(),
    ]


def _contents(model: Model, tape: Tape) -> list[bytes]:
    """Blob contents: kernel metadata naming a kernel of the pack (or another), what is not JSON
    or nests too deeply, a best_config, a pickle, a native module, and bytes from the tape."""
    names = model.strings("name") or ["kernel_0"]
    name = json.dumps(tape.pick(names)).encode()
    return [
        b'{"name": %s, "num_warps": 4}' % name,
        b'{"name": %s}' % name,
        b"",
        b"{}",
        b'{"name": "other_kernel"}',
        b'["kernel_0"]',
        b"not json",
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
        b'{"XBLOCK": 8, "num_warps": 2, "num_stages": 1}',
        b'{"child_paths": {"x.so": "/etc/passwd"}}',
        b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",
        b"\x7fELF" + bytes(60),
        b"x" * 300,
        tape.raw(64),
    ]


def _strings(current: str, model: Model) -> list[str]:
    pool = [v for _, _, v in _leaves(model.artifacts) if isinstance(v, str)]
    return [
        *pool[:8],
        "",
        ".",
        "..",
        "/",
        "../x",
        "/x",
        "a\x00b",
        "\n",
        "x" * 300,
        "\u00e9",
        "\u202e",
        "__grp__x.json",
        "x.so",
        "x.py",
        "x.pkl",
        SITE_KEY,
        "zz/mine.best_config",
        "mine",
        "sha256:" + HEX,
        "sha256:" + HEX[:63],
        HEX,
        HEX[:63],
        HEX + "0",
        HEX.upper(),
        current + "x",
        current[:-1],
        current[1:],
        "../" + current,
        current + "/..",
        current + ".so",
        current + ".py",
        current + "\x00",
        current * 3,
        current.upper(),
    ]


def _ints(current: int, model: Model) -> list[int]:
    sizes = sorted({len(b) for b in model.blobs.values()})[:4]
    edges = [0, -1, 1, 1 << 31, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, -(1 << 63)]
    return [*edges, current + 1, current - 1, current * 2, 10**6, *sizes]


def _value(current: Any, tape: Tape, model: Model) -> Any:
    """A value of the same JSON type as `current` that a schema or a content rule may refuse
    (and sometimes one of another type)."""
    if isinstance(current, bool):
        return tape.pick((not current, 0, 1, "true", None))
    if isinstance(current, int):
        return tape.pick(_ints(current, model))
    if isinstance(current, float):
        whole = int(current) if math.isfinite(current) else 0
        return tape.pick((0.0, -0.0, -1.0, 1e308, 5e-324, math.nan, math.inf, current * 2, whole))
    if isinstance(current, str):
        return tape.pick(_strings(current, model))
    if current is None:
        return tape.pick((None, "", 0, [], {}, False))
    return tape.pick(([], {}, None, _deep(32), _deep(33), _deep(3000), [current], {"x": current}))


UNKNOWN_FIELDS = ("x_unknown", "kind", "env", "extra", "group", "type", "key", "seq", "size", "content", "files")


def _edit_container(node: Any, tape: Tape, model: Model) -> None:
    """One edit of a JSON list or object: a value replaced, a member dropped, added (unknown
    fields, shadowing pairs) or duplicated, two swapped, the list emptied or made long."""
    if isinstance(node, dict):
        keys = list(node)
        op = tape.below(3)
        if op == 0 and keys:
            key = tape.pick(keys)
            node[key] = _value(node[key], tape, model)
        elif op == 1 and keys:
            del node[tape.pick(keys)]
        else:
            node[tape.pick(UNKNOWN_FIELDS)] = _value(None, tape, model)
        return
    op = tape.below(7)
    if not node or op == 6:
        node.insert(tape.below(len(node) + 1), [tape.pick(SHADOWS), _value(1, tape, model)])
        return
    i = tape.below(len(node))
    if op == 0:
        node[i] = _value(node[i], tape, model)
    elif op == 1:
        del node[i]
    elif op == 2:
        node.insert(i, _copy(node[i]))
    elif op == 3:
        j = tape.below(len(node))
        node[i], node[j] = node[j], node[i]
    elif op == 4:
        node.clear()
    else:
        node.extend(_copy(node[i]) for _ in range(200))


def _copy(value: Any) -> Any:
    """A copy of the JSON lists and objects in `value` (raw JSON text, however deep, is shared)."""
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _some(model: Model, tape: Tape, having: str = "") -> dict[str, Any] | None:
    """An artifact (one that has the field `having`, if given): a kind of the pack, then one of
    its artifacts, so that rare kinds are edited as often as common ones."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for a in model.artifacts:
        if isinstance(a, dict) and (not having or having in a):
            by_kind.setdefault(str(a.get("kind")), []).append(a)
    kinds = sorted(by_kind, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS))
    return tape.pick(by_kind[tape.pick(kinds)]) if by_kind else None


def edit_file_name(model: Model, tape: Tape) -> None:
    """Rename a kernel's or host module's file, in its group too (rarely not)."""
    artifact = _some(model, tape, "files")
    files = artifact.get("files") if artifact else None
    if not (artifact and isinstance(files, list) and files):
        return
    entry = tape.pick(files)
    if not (isinstance(entry, list) and entry):
        return
    old, entry[0] = entry[0], tape.pick(_file_names(artifact, str(entry[0]), model))
    group = artifact.get("group")
    if isinstance(group, list) and not tape.rarely(4):
        artifact["group"] = [entry[0] if name == old else name for name in group]


IDENTITIES = ("path", "cache_key", "name", "fn_name", "key", "type")


def edit_identity(model: Model, tape: Tape) -> None:
    """Change what names an artifact's file or folder: path, cache key, name, or (half the
    time, the first choice) a Megacache entry's key, the one name populate hands to torch."""
    artifact = (_some(model, tape, "key") if tape.below(2) == 0 else None) or _some(model, tape)
    if artifact is None:
        return
    fields = [f for f in IDENTITIES if f in artifact] + (["system"] if isinstance(artifact.get("system"), dict) else [])
    if not fields:
        return
    field = tape.pick(fields)
    if field == "system":
        artifact["system"]["hash"] = tape.pick((HEX, HEX[:63], "../" + HEX[3:], HEX.upper(), *model.strings("path")))
    else:
        artifact[field] = tape.pick(_identities(field, artifact[field], model))


def edit_kind(model: Model, tape: Tape) -> None:
    """Retag an artifact: the tag alone (its fields under another kind), or the fields of the
    new kind too, with names and blobs from the pack (a Megacache entry keyed into another
    cache's folder, a kernel in a folder the site holds, ...)."""
    artifact = _some(model, tape)
    if artifact is None:
        return
    kind = tape.pick((*KINDS, "example.future/1", "inductor.best_config/2", ""))
    if tape.rarely(3):
        artifact["kind"] = kind
        return
    env = artifact.get("env")
    artifact.clear()
    artifact.update(_fields(kind, model, tape), kind=kind, env=env)


def _fields(kind: str, model: Model, tape: Tape) -> dict[str, Any]:
    digests = sorted(model.blobs)
    blob = tape.pick(digests) if digests and not tape.rarely(3) else model.add_blob(tape.pick(_contents(model, tape)))
    size = len(model.blobs[blob])
    if kind.startswith("megacache."):
        fields: dict[str, Any] = {"key": tape.pick(_megacache_keys(model)), "seq": tape.below(4)}
        fields.update(content=blob, size=size)
        if kind == "megacache.other/1":
            fields["type"] = tape.pick(("x", "autotune", "inductor", "fxgraph"))
        return fields
    if kind == "inductor.best_config/1":
        return {
            "path": tape.pick(_identities("path", "", model)),
            "kwargs": [["XBLOCK", 8]],
            "num_warps": 2,
            "num_stages": 1,
        }
    if kind == "inductor.kernel_perf/1":
        return {"path": tape.pick(_identities("path", "", model)), "timings": [0.5]}
    if kind == "inductor.gemm_timings/1":
        entry = {"op": "mm", "inputs": "[]", "precision": "high", "timings": [["triton_mm_1", 0.5]]}
        return {"system": {"hash": HEX}, "entries": [entry]}
    key = tape.pick(_identities("cache_key", BASE32, model))
    if kind == "triton.autotune/1":
        config = {"kwargs": [["BLOCK", 64]], "num_warps": 4, "num_stages": 3}
        return {"cache_key": key, "fn_name": "mine", "tuning_key": [1024], "configs_timings": [[config, [0.1]]]}
    if kind == "triton.kernel/1":
        name = tape.pick(("mine", "kernel_0", "cuda_utils", *model.strings("name")))
        meta = model.add_blob(b'{"name": "%s"}' % name.encode())
        files = [[f"{name}.json", meta, len(model.blobs[meta])], [f"{name}.cubin", blob, size]]
        return {"cache_key": key, "name": name, "files": files[: 1 + tape.below(2)]}
    if kind == "triton.host_module/1":
        return {"cache_key": key, "files": [["cuda_utils.so", blob, size]]}
    return {"x_unknown": blob}


def edit_field(model: Model, tape: Tape) -> None:
    """A type-aware edit of any list or object in an artifact."""
    artifact = _some(model, tape)
    if artifact is not None:
        _edit_container(tape.pick(_containers(artifact)), tape, model)


def edit_free_form(model: Model, tape: Tape) -> None:
    """A pair added to a free-form map (``extra``, ``kwargs``, a Triton config's): a name that
    repeats or shadows a typed one, a value that is code or nests too deeply."""
    artifact = _some(model, tape, "kwargs") or _some(model, tape, "configs_timings")
    if artifact is None:
        return
    configs = artifact.get("configs_timings")
    nodes = [artifact]
    if isinstance(configs, list):
        nodes += [ct[0] for ct in configs if isinstance(ct, list) and ct and isinstance(ct[0], dict)]
    node = tape.pick(nodes)
    pairs = node.get(field := tape.pick(("extra", "kwargs")))
    if not isinstance(pairs, list):
        pairs = node[field] = []
    names = [p[0] for p in pairs if isinstance(p, list) and p]
    value = tape.pick((1, None, "os.system", {"__reduce__": "os.system"}, "/evil.ptx", _deep(32), _deep(33)))
    pairs.insert(tape.below(len(pairs) + 1), [tape.pick((*SHADOWS, *names)), value])


def edit_artifacts(model: Model, tape: Tape) -> None:
    """Copy an artifact into another environment (a new one, mostly) and edit the copy (two
    answers to one file: a conflict, or GEMM timings to merge), remove one, duplicate one, or
    move one to another environment or to none."""
    artifacts = model.artifacts
    if not artifacts:
        return
    i = tape.below(len(artifacts))
    op = tape.below(4)
    if op == 1:
        del artifacts[i]
        return
    artifact = _copy(artifacts[i]) if op != 2 else artifacts[i]
    if op != 3 and isinstance(artifact, dict):
        if op == 0 and not tape.rarely(3):
            model.environments.append(env := {"torch_version": f"0.0.{len(model.environments)}"})
            artifact["env"] = _digest(_canonical(env))
        else:
            envs = [_digest(_canonical(e)) for e in model.environments]
            artifact["env"] = tape.pick([*envs, _digest(b"no environment")])
        if op == 0 and not tape.rarely(4):
            _edit_container(tape.pick(_containers(artifact)), tape, model)
    if op != 2:
        artifacts.append(artifact)


ENV_FIELDS = ("torch_version", "torch_key", "triton_version", "device_name", "python_abi", "cache_key_tag", "extra")


def edit_environment(model: Model, tape: Tape) -> None:
    """Change an environment (its artifacts follow it, or rarely keep the old digest), add a
    validator this reader does not know, duplicate, remove or add one."""
    envs = model.environments
    op = tape.below(4)
    if op == 3 or not envs:
        envs.append({"torch_version": f"0.0.{tape.below(4)}"})
        return
    i = tape.below(len(envs))
    if op == 1:
        envs.append(_copy(envs[i]))
    elif op == 2:
        del envs[i]
    elif isinstance(envs[i], dict):
        old = _digest(_canonical(envs[i]))
        field = tape.pick(ENV_FIELDS)
        envs[i][field] = {"validator": "x"} if field == "extra" else tape.pick(("", "x", HEX, None, 1))
        if not tape.rarely(4):
            new = _digest(_canonical(envs[i]))
            for artifact in model.artifacts:
                if isinstance(artifact, dict) and artifact.get("env") == old:
                    artifact["env"] = new


def edit_reference(model: Model, tape: Tape) -> None:
    """Point a blob reference at another blob, at an environment, or at nothing."""
    artifact = _some(model, tape)
    refs = [(node, key) for node, key, v in _leaves(artifact) if key != "env" and _is_digest(v)] if artifact else []
    if refs:
        node, key = tape.pick(refs)
        envs = [_digest(_canonical(e)) for e in model.environments]
        node[key] = tape.pick([*sorted(model.blobs), _digest(b"missing"), *envs])


def edit_content(model: Model, tape: Tape) -> None:
    """Replace a blob's content: its digest and every reference follow (the declared sizes too,
    or one time in three not: then they lie), and the old blob goes (or rarely stays)."""
    if not model.blobs:
        return
    old = tape.pick(sorted(model.blobs))
    content = tape.pick(_contents(model, tape))
    if not tape.rarely(4):
        del model.blobs[old]
    new = model.add_blob(content)
    lie = tape.rarely(3)
    for node, key, value in list(_leaves(model.artifacts)):
        if value != old:
            continue
        node[key] = new
        if lie:
            continue
        if isinstance(node, list) and key + 1 < len(node) and type(node[key + 1]) is int:
            node[key + 1] = len(content)
        elif isinstance(node, dict) and key == "content" and "size" in node:
            node["size"] = len(content)


def edit_blobs(model: Model, tape: Tape) -> None:
    """Add a blob nobody references, or drop one (its references dangle)."""
    if model.blobs and tape.rarely(2):
        del model.blobs[tape.pick(sorted(model.blobs))]
    else:
        model.add_blob(tape.pick(_contents(model, tape)))


def edit_annotations(model: Model, tape: Tape) -> None:
    key = tape.pick(("org.example.model", "org.example.run", "io.atpack.signature.0123456789abcdef", "Bad Key", ""))
    if tape.rarely(2):
        model.index["digested_annotations"] = sorted({*model.index["digested_annotations"], key})
    else:
        model.index["annotations"][key] = tape.pick(("x", "", "\x00", "x" * 5000))


EDITS: tuple[Callable[[Model, Tape], None], ...] = (
    edit_file_name,
    edit_identity,
    edit_file_name,
    edit_identity,
    edit_file_name,
    edit_identity,
    edit_kind,
    edit_kind,
    edit_field,
    edit_field,
    edit_content,
    edit_content,
    edit_free_form,
    edit_artifacts,
    edit_environment,
    edit_reference,
    edit_blobs,
    edit_annotations,
)
"""Structural edits, as often as they appear here."""

_seed_models: list[Model] = []


def structural_pack(tape: Tape) -> bytes:
    """A seed pack (`tools/fuzz_corpus/pack/`) after 0 to 4 edits, built, as the tape says."""
    if not _seed_models:
        _seed_models.extend(Model.of(data) for data in seeds_for("pack"))
    model = tape.pick(_seed_models).copy()
    for _ in range(tape.below(5)):
        tape.pick(EDITS)(model, tape)
    return build(model, tape)


# --------------------------------------------------------------------------- the populate oracle
#
# What populate may do to the machine, checked from the outside: only files added, only inside
# the cache folders, only under names that hold data. The rules are written here, not taken from
# atpack, so that a check dropped from atpack shows up as a violation.


class Violation(AssertionError):
    """Populate did something to the machine it must never do: as bad as a crash."""


DATA_SUFFIXES = (".json", ".source", ".ttir", ".ttgir", ".glir", ".llir", ".ptx", ".cubin", ".amdgcn", ".hsaco")
DATA_SUFFIXES += (".spv", ".zebin")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TRITON_FILE = re.compile(
    rf"[A-Za-z0-9_-]{{16,128}}/(?:{_NAME}\.autotune\.json|__grp__{_NAME}\.json"
    rf"|{_NAME}(?:{'|'.join(map(re.escape, DATA_SUFFIXES))}))"
)
"""What populate may add to a Triton folder without trust: autotune results, and compiled
kernels' metadata, IR, binaries and group files (never a native module, Python or a pickle)."""
INDUCTOR_FILE = re.compile(
    r"[a-z0-9]{2}/[0-9a-f]{64}\.best_config|[a-z0-9]{2}/c[a-z0-9]{51}\.kernel_perf"
    r"|cache/[0-9a-f]{64}|locks/[0-9a-f]{64}\.atpack\.lock|atpack-replay\.json"
)
"""What populate may add to an Inductor folder without trust: ``.best_config`` and
``.kernel_perf`` files beside kernel modules, GEMM timings and their locks, the replay switch
(never a kernel module, nothing under ``fxgraph/`` or ``aotautograd/``, whose files are unpickled)."""
RUNS_CODE = frozenset(KINDS[6:])
"""Kinds that run code when loaded: populate without trust skips them."""

Listing = dict[str, tuple[str, Any]]


def listing(root: str) -> Listing:
    """Everything under `root` (symlinks not followed), by relative path: kind and content."""
    out: Listing = {}
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as entries:
            for e in entries:
                rel = prefix + e.name
                if e.is_symlink():
                    out[rel] = ("link", os.readlink(e.path))
                elif e.is_dir(follow_symlinks=False):
                    out[rel] = ("dir", None)
                    stack.append((rel + "/", e.path))
                elif e.is_file(follow_symlinks=False):
                    with open(e.path, "rb") as f:
                        out[rel] = ("file", f.read())
                else:
                    out[rel] = ("other", stat.S_IFMT(e.stat(follow_symlinks=False).st_mode))
    return out


def _sweep_sites(parent: str) -> None:
    """Remove the sites of fuzzing processes that are gone."""
    for name in os.listdir(parent):
        if match := re.fullmatch(r"atpack-fuzz-site-(\d+)-\w+", name):
            try:
                os.kill(int(match[1]), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            except OSError:
                pass  # alive, someone else's


class Site:
    """Cache folders that hold results already, and what lies around them: ``caches/inductor``
    and ``caches/triton`` (named to populate), ``tmp/torchinductor_<user>`` and
    ``home/.triton/cache`` (torch's and Triton's own folders while TMPDIR and HOME point here),
    and files outside all of them. Some results are where the seed ``all-kinds.atpack`` writes
    (its kernel, its best_config, a Megacache entry's file), with other content, or as it
    writes them (its kernel folder, as Triton leaves it, without the IR the pack adds; the same
    copied from elsewhere, its group file naming paths there), or GEMM timings of another op;
    the shard of its kernel_perf is a symlink out of the folder, its GEMM timing file a FIFO.
    Kept in memory (``/dev/shm``) where there is one."""

    def __init__(self, parent: str | None = None) -> None:
        if parent is None and os.access("/dev/shm", os.W_OK):
            parent = "/dev/shm"
        _sweep_sites(parent or tempfile.gettempdir())
        self.root = tempfile.mkdtemp(prefix=f"atpack-fuzz-site-{os.getpid()}-", dir=parent)
        atexit.register(shutil.rmtree, self.root, True)  # libFuzzer ends its process without atexit: see _sweep_sites
        self.home, self.tmp = f"{self.root}/home", f"{self.root}/tmp"
        user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
        self.inductor_default = f"{self.tmp}/torchinductor_{user}"
        self.triton_default = f"{self.home}/.triton/cache"
        best_config = b'{"XBLOCK": 1, "num_warps": 1, "num_stages": 1}'
        inductor_default = self.inductor_default[len(self.root) + 1 :]
        loaded = f"home/.triton/cache/{BASE32}"  # the seed's kernel, as Triton leaves it: no file to add
        group = {"child_paths": {n: f"{self.root}/{loaded}/{n}" for n in ("kernel_0.json", "kernel_0.cubin")}}
        self.files = {
            f"{loaded}/kernel_0.json": ALL_KINDS_BLOBS["meta"],
            f"{loaded}/kernel_0.cubin": ALL_KINDS_BLOBS["cubin"],
            f"{loaded}/__grp__kernel_0.json": json.dumps(group).encode(),
            "caches/inductor/zz/mine.best_config": best_config,
            f"caches/inductor/ef/{HEX}.best_config": best_config,
            f"caches/triton/{SITE_KEY}/mine.json": b"{}",
            f"caches/triton/{BASE32}/kernel_0.json": b'{"name": "kernel_0", "from": "another run"}',
            "outside/victim.txt": b"must stay as it is",
            f"{inductor_default}/zz/mine.best_config": best_config,
            f"{inductor_default}/ab/{_hex('best')}.best_config": best_config,
            f"home/.triton/cache/{SITE_KEY}/mine.json": b"{}",
            "home/notes.txt": b"the user's own",
            "tmp/other.txt": b"another program's",
        }

        moved = f"{inductor_default}/triton/0/{BASE32}"  # the seed's kernel, copied from elsewhere
        old_group = {"child_paths": {n: f"/where/it/was/made/{n}" for n in ("kernel_0.json", "kernel_0.cubin")}}
        timings = {"system": {"hash": HEX}, "cache": {"mm": {"[]": {"high": {"mm_0": 0.25}}}}}
        self.files.update(
            {
                f"{moved}/kernel_0.json": ALL_KINDS_BLOBS["meta"],
                f"{moved}/kernel_0.cubin": ALL_KINDS_BLOBS["cubin"],
                f"{moved}/kernel_0.ptx": ALL_KINDS_BLOBS["ptx"],
                f"{moved}/__grp__kernel_0.json": json.dumps(old_group).encode(),
                f"{inductor_default}/cache/{HEX}": json.dumps(timings, indent=4).encode(),  # the seed's, another op
            }
        )
        self.links = {"caches/inductor/cd": "../../outside"}  # the seed's kernel_perf shard, elsewhere
        self.fifos = [f"caches/inductor/cache/{HEX}"]  # where the seed's GEMM timings go: never opened
        self._listing: Listing | None = None

    def reset(self) -> Listing:
        """Put the site back as it was made; returns its `listing`."""
        shutil.rmtree(self.root)
        for rel, content in self.files.items():
            path = f"{self.root}/{rel}"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        for rel, target in self.links.items():
            os.symlink(target, f"{self.root}/{rel}")
        for rel in self.fifos:
            os.makedirs(os.path.dirname(f"{self.root}/{rel}"), exist_ok=True)
            os.mkfifo(f"{self.root}/{rel}")
        if self._listing is None:
            self._listing = listing(self.root)
        return self._listing

    def explicit(self) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """Populate's options that name both folders."""
        folders = {"inductor_dir": f"{self.root}/caches/inductor", "triton_dir": f"{self.root}/caches/triton"}
        return _environment({}, folders)

    def defaults(self) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """Torch's and Triton's own folders: HOME and TMPDIR (and TRITON_HOME, which Triton reads
        at import, before HOME moved) here, neither cache variable set, device 0."""
        variables = {"HOME": self.home, "TMPDIR": self.tmp, "TRITON_HOME": self.home}
        return _environment({**variables, "TORCHINDUCTOR_CACHE_DIR": None, "TRITON_CACHE_DIR": None}, {"devices": [0]})

    def folders(self, report: Any) -> tuple[str, list[str]]:
        """The Inductor and Triton folders `report` says populate wrote to, relative to the site,
        checked against where they must be."""
        inductor = os.path.relpath(report.inductor_dir, self.root)
        tritons = [os.path.relpath(t, self.root) for t in report.triton_dirs]
        if report.inductor_dir == f"{self.root}/caches/inductor":
            expected = ["caches/triton"]
        else:
            expected = [f"{inductor}/triton/0", os.path.relpath(self.triton_default, self.root)]
            if report.inductor_dir != self.inductor_default:
                raise Violation(f"populate chose {report.inductor_dir} as the Inductor folder")
        if tritons != expected:
            raise Violation(f"populate chose {report.triton_dirs} as the Triton folders")
        return inductor, tritons


@contextlib.contextmanager
def _environment(variables: dict[str, str | None], options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`options` for populate, with environment `variables` set (None: unset) meanwhile. Torch's
    plug-ins stay off (the replay switch is still written; populate only skips looking for the
    plug-in among the installed entry points, 18 ms a call)."""
    variables = {"TORCH_DEVICE_BACKEND_AUTOLOAD": "0", **variables}
    saved = {k: os.environ.get(k) for k in variables}
    for k, v in variables.items():
        _set(k, v)
    tempfile.tempdir = None  # gettempdir() caches its answer
    try:
        yield options
    finally:
        for k, v in saved.items():
            _set(k, v)
        tempfile.tempdir = None


def _set(variable: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = value


def check_changes(before: Listing, after: Listing, inductor: str, tritons: list[str], root: str) -> None:
    """Nothing that was there changed or went (but for GEMM timings merged in and a kernel's
    group file pointed at its own folder, `_updated`); everything new is inside a cache folder
    (`inductor`, `tritons`: relative to `root`), and a new file has a name of the kind that
    folder holds."""
    for rel, entry in before.items():
        now = after.get(rel, ("nothing", None))
        if now != entry and not _updated(rel, entry, now, f"{root}/{os.path.dirname(rel)}", inductor, tritons):
            raise Violation(f"{rel} was changed or removed: {entry[0]} before, {now[0]} after")
    for rel in sorted(after.keys() - before.keys()):
        what = after[rel][0]
        folder = next((f for f in [*tritons, inductor] if rel.startswith(f + "/")), None)
        if folder is None:
            raise Violation(f"{rel} ({what}) was created outside the cache folders")
        if what == "dir":
            continue
        inner, rule = rel[len(folder) + 1 :], INDUCTOR_FILE if folder == inductor else TRITON_FILE
        if what != "file" or not rule.fullmatch(inner):
            raise Violation(
                f"{rel} ({what}) is not a name {'Inductor' if rule is INDUCTOR_FILE else 'Triton'} reads as data"
            )
        if problem := _config_problem(inner, after[rel][1]):
            raise Violation(f"{rel} holds a config torch or Triton never runs: {problem}")


def _config_problem(name: str, content: Any) -> str:
    """Why a tuning result populate wrote holds a config its producer never emits ("" where none)."""
    from atpack.adapters.configs import inductor_config_problem, triton_config_problem

    try:
        data = json.loads(content)
    except (TypeError, ValueError, RecursionError):  # not JSON torch reads as a result
        return ""
    if name.endswith(".best_config") and isinstance(data, dict) and "num_warps" in data:
        typed = ("num_warps", "num_stages", "configs_hash", "found_by_coordesc", "time_taken_ms", "triton_cache_hash")
        kwargs = [(k, v) for k, v in data.items() if k not in typed]
        return inductor_config_problem(kwargs, data.get("num_warps"), data.get("num_stages"))
    if name.endswith(".autotune.json") and isinstance(data, dict):
        for config, _ in data.get("configs_timings", []):
            kwargs = list(config.get("kwargs", {}).items())
            warps, stages = config.get("num_warps"), config.get("num_stages")
            if problem := triton_config_problem(
                warps, stages, config.get("num_ctas", 1), config.get("maxnreg"), kwargs
            ):
                return problem
    return ""


def _updated(
    rel: str, old: tuple[str, Any], new: tuple[str, Any], folder: str, inductor: str, tritons: list[str]
) -> bool:
    """Whether a file populate may update was updated as it may be: a GEMM timing file of the
    Inductor folder keeps its system and every timing (others are added), a kernel's group file
    in a Triton folder lists the same files, now at their paths in `folder`."""
    if old[0] != "file" or new[0] != "file":
        return False
    try:
        was, now = json.loads(old[1]), json.loads(new[1])
        if re.fullmatch(rf"{re.escape(inductor)}/cache/[0-9a-f]{{64}}", rel):
            timings = _timings(now)
            return bool(was["system"] == now["system"] and all(timings.get(k) == v for k, v in _timings(was).items()))
        if any(re.fullmatch(rf"{re.escape(t)}/[A-Za-z0-9_-]+/__grp__{_NAME}\.json", rel) for t in tritons):
            return bool(now == {"child_paths": {child: f"{folder}/{child}" for child in was["child_paths"]}})
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return False


def _timings(data: Any) -> dict[tuple[str, ...], Any]:
    """A GEMM timing file's timings by (op, inputs, precision, choice)."""
    cache = data["cache"]
    return {
        (op, inputs, precision, choice): ms
        for op, by_inputs in cache.items()
        for inputs, by_precision in by_inputs.items()
        for precision, choices in by_precision.items()
        for choice, ms in choices.items()
    }


def check_report(pack: Any, report: Any) -> None:
    """Every artifact has exactly one outcome; a failure names an atpack error (or torch's hook)
    in one line; nothing that runs code was written."""
    atpack = _atpack
    artifacts = collections.Counter((a.kind, a.key) for a in pack.artifacts)
    outcomes = collections.Counter((o.kind, o.key) for o in report.outcomes)
    if artifacts != outcomes:
        raise Violation(
            f"outcomes do not match the artifacts: {sorted((artifacts - outcomes) + (outcomes - artifacts))[:3]}"
        )
    for o in report.outcomes:
        error = getattr(atpack.errors, o.error, None) if o.error else None
        if "\n" in o.detail or o.action not in ("written", "present", "kept", "merged", "skipped", "failed"):
            raise Violation(f"outcome {o!r}")
        typed = error and issubclass(error, atpack.AtpackError)
        if o.action == "failed" and not typed and not o.detail.startswith("torch's populate_cache()"):
            raise Violation(f"a failure that names no atpack error: {o!r}")
        if o.kind in RUNS_CODE and o.action != "skipped":
            raise Violation(f"{o.kind} {o.key!r} runs code and was not skipped without trust: {o.action}")


def _one_line(error: Exception) -> str:
    if "\n" in str(error):
        raise Violation(f"a {type(error).__name__} of more than one line: {str(error)!r}")
    return type(error).__name__


_site: Site | None = None
_local: Any = None


def check_populate(data: bytes) -> str:
    """Populate the pack `data` into a fresh `Site` (`RUNS`), checking each time what populate
    did (`populate_checked`). An exception other than a one-line `AtpackError` escapes. Returns
    how it went: "open: FormatError", or how the populate with both folders named went."""
    global _site, _local
    atpack = _atpack
    try:
        pack = atpack.Pack(_BytesSource(data))
    except atpack.AtpackError as e:
        return f"open: {_one_line(e)}"
    if _site is None:
        _site, _local = Site(), atpack.env.LocalEnvironment()
        for field in atpack.env.FIELDS:  # now, while HOME is the user's: its cache of torch_key lives there
            _local.get(field)
    before = _site.reset()
    results = {}
    with pack:
        for run in RUNS:
            results[run], before = populate_checked(pack, _site, run, before)
    return results["named"]


RUNS = ("dry run", "named", "again", "defaults")
"""A dry run and a populate with both folders named, again (neither may change anything), then
a populate into torch's and Triton's own folders."""


def populate_checked(pack: Any, site: Site, run: str, before: Listing) -> tuple[str, Listing]:
    """Populate `pack` into `site` (whose `listing` is `before`) as `run` says, never trusting
    its pickles, whatever environment it names, and check what it did (`check_changes`,
    `check_report`). Returns the site's listing after it, and "populate:" and the error it
    raised, or "populated:" and the outcomes ("failed CacheFileError, written")."""
    from atpack.populate import populate  # here, after `load`: atheris instruments atpack as it is imported

    atpack = _atpack
    with site.defaults() if run == "defaults" else site.explicit() as options:
        try:
            report = populate(
                pack,
                ignore_environment=True,
                trust_pickles=False,
                environment=_local,
                dry_run=run == "dry run",
                **options,
            )
        except atpack.AtpackError as e:
            report, raised = None, _one_line(e)
    after = listing(site.root)
    if (report is None or run in ("dry run", "again")) and after != before:
        changed = min(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        raise Violation(f"populate ({run}) changed {changed}, or raised after it wrote it")
    if report is None:
        return f"populate: {raised}", after
    check_changes(before, after, *site.folders(report), site.root)
    check_report(pack, report)
    actions = {f"failed {o.error}" if o.error else o.action for o in report.outcomes}
    return f"populated: {', '.join(sorted(actions)) or 'nothing'}", after


def check_structural(data: bytes) -> str:
    """The `pack-structural` target: a seed pack edited as the tape `data` says, read whole
    (`check_pack`) and populated (`check_populate`)."""
    pack = structural_pack(Tape(data))
    check_pack(pack)
    return check_populate(pack)


CHECKS: dict[str, Callable[[bytes], object]] = {
    "pack": check_pack,
    "pack-sealed": check_pack_sealed,
    "megacache": check_megacache,
    "pack-structural": check_structural,
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
    seeds["all-kinds.atpack"] = all_kinds_seed()
    return seeds


ALL_KINDS_BLOBS = {
    "meta": b'{"name": "kernel_0", "num_warps": 4}',
    "cubin": b"\x7fELF cubin of kernel_0",
    "ptx": b"// ptx of kernel_0",
    "config": b'{"XBLOCK": 8, "num_warps": 2, "num_stages": 1}',
    "graph": b"\x80\x04\x95 a pickled graph, never loaded untrusted",
    "so": b"\x7fELF cuda_utils",
}


def all_kinds_seed() -> bytes:
    """A pack that populates cleanly, with every kind and the ways kinds meet: a Megacache
    autotune entry for the path of a best_config (superseded) and one for another path, an
    autotune result in a kernel's folder, a kernel whose metadata names it, a host module."""
    import io

    from atpack import artifacts as a

    blobs = ALL_KINDS_BLOBS
    d = {k: _digest(v) for k, v in blobs.items()}
    out = io.BytesIO()
    writer = _atpack.PackWriter(out, group_size=64, level=3)
    env = writer.add_environment(
        a.Environment(torch_version="2.13.0", triton_version="3.9.0", device_name="NVIDIA H100", python_abi="cp311")
    )
    for data in blobs.values():
        writer.add_blob(data)
    path = f"ab/{_hex('best')}.best_config"
    key = BASE32
    config = a.TritonConfig(kwargs=(("BLOCK", 64),), num_warps=4, num_stages=3)
    for artifact in (
        a.InductorBestConfig(env=env, path=path, kwargs=(("XBLOCK", 8),), num_warps=2, num_stages=1),
        a.InductorKernelPerf(env=env, path=f"cd/c{BASE32.lower()[:51]}.kernel_perf", timings=(0.5,)),
        a.InductorGemmTimings(
            env=env,
            system=a.GemmSystem(hash=HEX),
            entries=(a.GemmEntry(op="mm", inputs="[]", precision="high", timings=(a.ChoiceTiming("mm_1", 0.5),)),),
        ),
        a.TritonAutotune(
            env=env,
            cache_key=key,
            fn_name="kernel_0",
            tuning_key=(1024,),
            configs_timings=(a.TritonConfigTiming(config, (0.1,)),),
        ),
        a.TritonKernel(
            env=env,
            cache_key=key,
            name="kernel_0",
            files=tuple(
                a.KernelFile(f"kernel_0.{suffix}", d[b], len(blobs[b]))
                for suffix, b in (("json", "meta"), ("cubin", "cubin"), ("ptx", "ptx"))
            ),
            group=("kernel_0.json", "kernel_0.cubin"),
        ),
        a.TritonHostModule(
            env=env, cache_key=CUDA_UTILS_KEY, files=(a.KernelFile("cuda_utils.so", d["so"], len(blobs["so"])),)
        ),
        a.MegacacheAutotune(env=env, entry_key=path, seq=0, content=d["config"], size=len(blobs["config"])),
        a.MegacacheAutotune(
            env=env, entry_key=f"ef/{HEX}.best_config", seq=1, content=d["config"], size=len(blobs["config"])
        ),
        a.MegacacheInductor(
            env=env, entry_key="f" + BASE32.lower()[:51], seq=2, content=d["graph"], size=len(blobs["graph"])
        ),
    ):
        writer.add(artifact)
    writer.finish()
    return out.getvalue()


def structural_seeds() -> dict[str, bytes]:
    """Tapes for `pack-structural`: each seed pack as it is, and a few edits of each."""
    rng = random.Random(13)
    count = len(list((CORPUS / "pack").iterdir()))
    seeds = {f"seed-{i}.tape": bytes([i, 0]) for i in range(count)}  # the pack, no edit
    seeds.update({f"edits-{i}.tape": bytes([i % count]) + rng.randbytes(48) for i in range(2 * count)})
    return seeds


def write_corpus() -> None:
    for folder, make in (("pack", pack_seeds), ("megacache", megacache_seeds), ("structural", structural_seeds)):
        seeds = make()
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


def tally(check: Callable[[bytes], str], inputs: Sequence[bytes]) -> dict[str, Any]:
    """Where `pack-structural` inputs end (run here once more, after fuzzing): refused when the
    pack is opened (by error), or populated, and how many reach each outcome of populate."""
    load(instrument=False)
    ends: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    for data in inputs:
        try:
            result = check(data)
        except Exception as e:
            result = f"crash: {type(e).__name__}"
        ends[result.partition(":")[0] if result.startswith("populated") else result] += 1
        if result.startswith("populated: "):
            outcomes.update(result.removeprefix("populated: ").split(", "))
    return {"inputs": len(inputs), "ends": dict(ends.most_common()), "outcomes": dict(sorted(outcomes.items()))}


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
    reached = (
        tally(check_structural, [f.read_bytes() for f in corpus.iterdir()]) if target == "pack-structural" else None
    )
    return {
        "reached": reached,
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
        "load_average": round(os.getloadavg()[0], 1),
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
        "# Fuzzing the pack reader, the Megacache parser and populate",
        "",
        f"`python tools/fuzz_pack.py --report --seconds {meta['seconds_per_target']}` — {meta['date']}, "
        f"commit `{meta['commit']}`",
        "",
        f"Engine: {engine}. Python {meta['python']}, {meta['machine']} (load average {meta['load_average']} when "
        "it started: other work shares the machine, and exec/s with it). One process per target, "
        f"{meta['seconds_per_target']} s each, seeded from `tools/fuzz_corpus/`; an input running over 10 s "
        "counts as a hang. A crash is any exception other than an `atpack.AtpackError` subclass (any at all "
        "from an opened pack's manifest), an error of more than one line, a blob read back that does not match "
        "its digest, or a pack that verifies with a referenced blob missing; for `pack-structural`, also "
        "anything populate (never trusting pickles, environment ignored) does to the site beyond adding data "
        "files inside the cache folders: a file or folder created, changed or removed outside the Inductor "
        "and Triton folders, an existing file changed or removed (but GEMM timings merged in and a kernel's "
        "group file pointed at its own folder), a new file whose name its folder's reader "
        "would not take as data (Triton folders: autotune results, kernel metadata, IR, binaries and group "
        "files, never `.so`, `.py`, `.pkl`; Inductor folders: `<xx>/<sha256>.best_config`, "
        "`<xx>/c<51>.kernel_perf`, GEMM timings and their locks, the replay switch, nothing under `fxgraph/` "
        "or `aotautograd/`), a dry run or a second populate that changes anything, an artifact without exactly one "
        "outcome, or a kind that runs code that was not skipped.",
        "",
        "| target | what it runs | executions | exec/s | coverage (edges / features) | corpus (seeds → end) "
        "| crashes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    what = {
        "pack": "open + verify + read every blob (raw bytes)",
        "pack-sealed": "same, index JSON and frames re-sealed (valid footer, frame sha256s)",
        "megacache": "`blob_entries` as is and with a recomputed CRC, round trip, `collect`",
        "pack-structural": "index and blobs edited as structure, rebuilt valid; read whole, then populated "
        "into a site 4 times (dry run, named folders, again, default folders)",
    }
    for target, r in results.items():
        cov = f"{r.get('coverage_edges')} / {r.get('coverage_features')}" if r.get("coverage_edges") else "—"
        corpus = f"{r['seeds']} → {r['corpus_after']}" if "seeds" in r else "—"
        rate = r.get("execs_per_s") or "—"
        lines.append(
            f"| `{target}` | {what[target]} | {r['execs']:,} | {rate} | {cov} | {corpus} | {len(r['crashes'])} |"
        )
    if reached := results.get("pack-structural", {}).get("reached"):
        ends = ", ".join(f"{n:,} {end}" for end, n in reached["ends"].items())
        outcomes = ", ".join(f"{action} {n:,}" for action, n in reached["outcomes"].items())
        lines += [
            "",
            f"`pack-structural`'s corpus at the end, run once more: {reached['inputs']:,} inputs; where they end: "
            f"{ends}. Inputs whose first populate reached each outcome: {outcomes}.",
        ]
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
        if target == "pack-structural":  # torch imported for the Megacache replay now, not in an input's 10 s
            for data in seeds_for(target):
                check_structural(data)
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
