"""Sample pack content and pack surgery, for tests of pack readers and writers.

Two kinds of tool live here:

* small, real sample content (every artifact kind, environments, blobs) and ways to write it;
* pack surgery: take a valid pack's bytes apart (header, frames, index JSON, footer) and put
  them back together with exactly one chosen defect, every other digest and offset fixed up.

    data = pack_bytes(sample_content(group_size=1024), group_size=1024)
    bad = rewrite_index(data, lambda index: index["blobs"].clear())  # an index that lost its blobs
    open_bytes(bad)  # atpack.FormatError: frame 0 holds 1025 bytes but its blobs cover 0

Plain functions, no fixtures, so that test modules can import them without clashing with
fixtures of their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import struct
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import zstandard

import atpack
from atpack.artifacts import (
    ChoiceTiming,
    GemmEntry,
    GemmSystem,
    KernelFile,
    TritonConfig,
    TritonConfigTiming,
)
from atpack.digest import canonical, digest_bytes
from atpack.pack import DEFAULT_GROUP_SIZE, DEFAULT_LIMITS, PackWriter

HEADER = struct.Struct("<8sHHI")  # magic, major, minor, flags
FOOTER = struct.Struct("<QQQ32sHHI8s")  # index offset, length, size, sha256, major, minor, flags, magic
MAGIC = b"\x89ATPACK\n"

# --------------------------------------------------------------------------- sample content


def hex64(seed: str) -> str:
    """64 lowercase hex digits derived from `seed`."""
    return hashlib.sha256(seed.encode()).hexdigest()


def alnum(seed: str, n: int) -> str:
    """`n` characters of [a-z0-9] derived from `seed`."""
    return (hex64(seed) * (n // 64 + 1))[:n]


INDUCTOR_ENV = atpack.Environment(
    torch_version="2.8.0",
    torch_key=hex64("torch"),
    cache_key_tag="tag",
    device_name="NVIDIA H100 80GB HBM3",
)
TRITON_ENV = atpack.Environment(
    triton_version="3.4.0",
    triton_key="triton-key",
    backend_hash="backend",
    compute_capability="90",
    device_name="NVIDIA H100 80GB HBM3",
    python_abi="cp311",
)
UNUSED_ENV = atpack.Environment(torch_version="0.0.1")


def best_config(env: str, n: int, *, num_warps: int = 4) -> atpack.InductorBestConfig:
    return atpack.InductorBestConfig(
        env=env,
        path=f"{alnum(f'dir{n}', 2)}/{hex64(f'best{n}')}.best_config",
        kwargs=(("XBLOCK", 128 << (n % 6)), ("R0_BLOCK", 8)),  # powers of two, as Inductor emits
        num_warps=num_warps,
        num_stages=1,
        found_by_coordesc=n % 2 == 0,
        time_taken_ms=0.25 * n,
    )


def kernel_perf(env: str, n: int) -> atpack.InductorKernelPerf:
    return atpack.InductorKernelPerf(
        env=env,
        path=f"{alnum(f'pdir{n}', 2)}/c{alnum(f'perf{n}', 51)}.kernel_perf",
        timings=(0.0123 * (n + 1), None),
    )


def gemm_timings(env: str, n: int) -> atpack.InductorGemmTimings:
    return atpack.InductorGemmTimings(
        env=env,
        system=GemmSystem(hash=hex64(f"system{n}"), device_name="NVIDIA H100 80GB HBM3", triton="3.4.0"),
        entries=(
            GemmEntry(
                op="mm",
                inputs="[[1024, 512], [512, 256]]",
                precision="high",
                timings=(ChoiceTiming("triton_mm_1", 0.011), ChoiceTiming("extern_mm", None)),
            ),
        ),
    )


def triton_autotune(env: str, n: int) -> atpack.TritonAutotune:
    return atpack.TritonAutotune(
        env=env,
        cache_key=alnum(f"autotune{n}", 52).upper(),
        fn_name=f"_kernel_{n}",
        tuning_key=(1024 * (n + 1), "torch.float16", True, None),
        configs_timings=(
            TritonConfigTiming(TritonConfig(kwargs=(("BLOCK", 64),), num_warps=4, num_stages=3), (0.1, 0.09, 0.11)),
            TritonConfigTiming(TritonConfig(kwargs=(("BLOCK", 128),), num_warps=8, num_stages=2), (None,)),
        ),
    )


def triton_kernel(env: str, n: int, files: Sequence[tuple[str, bytes]]) -> atpack.TritonKernel:
    """A compiled-kernel artifact whose files are `files` (name, content)."""
    return atpack.TritonKernel(
        env=env,
        cache_key=alnum(f"kernel{n}", 52),
        name=f"kernel_{n}",
        files=tuple(KernelFile(name, digest_bytes(data), len(data)) for name, data in files),
    )


def pack_of(
    *artifacts: atpack.Artifact,
    blobs: tuple[bytes, ...] = (),
    envs: tuple[atpack.Environment, ...] = (),
    group_size: int = DEFAULT_GROUP_SIZE,
) -> bytes:
    """A pack of `artifacts` and `blobs` by the reference writer, with `envs` as its environments
    (by default INDUCTOR_ENV and TRITON_ENV)."""
    out = io.BytesIO()
    writer = PackWriter(out, group_size=group_size)
    for env in envs or (INDUCTOR_ENV, TRITON_ENV):
        writer.add_environment(env)
    for blob in blobs:
        writer.add_blob(blob)
    for artifact in artifacts:
        writer.add(artifact)
    writer.finish()
    return out.getvalue()


@dataclasses.dataclass
class Content:
    """What goes into a pack, as the writer's add_* calls would receive it."""

    environments: list[atpack.Environment] = dataclasses.field(default_factory=list)
    blobs: list[tuple[bytes, str]] = dataclasses.field(default_factory=list)  # (data, hint)
    artifacts: list[atpack.Artifact | atpack.UnknownArtifact] = dataclasses.field(default_factory=list)
    annotations: list[tuple[str, str, bool]] = dataclasses.field(default_factory=list)  # (key, value, digested)

    def operations(self) -> list[tuple[str, Any]]:
        return (
            [("env", e) for e in self.environments]
            + [("blob", b) for b in self.blobs]
            + [("artifact", a) for a in self.artifacts]
            + [("annotation", a) for a in self.annotations]
        )


SMALL_SUFFIXES = (".json", ".ttir", ".ttgir", ".llir", ".ptx", ".source", ".amdgcn", ".spv", ".glir")
BIG_SUFFIXES = (".cubin", ".hsaco", ".zebin")


def sample_content(*, group_size: int, big_blobs: int = 1, small_blobs: int = 4) -> Content:
    """Every artifact kind, two environments (and one nobody uses), `small_blobs` blobs well
    under `group_size` and `big_blobs` blobs larger than it, all referenced by kernels: kernel 0
    has the first two small ones and the big ones, kernel 1 the other small ones; each kernel's
    first file is its metadata (``kernel_<n>.json``, naming the kernel)."""
    rng = random.Random(1234)
    small = []
    for i in range(small_blobs):
        k, j = (0, i) if i < 2 else (1, i - 2)
        small.append(
            (f"kernel_{k}{SMALL_SUFFIXES[j]}", b'{"name": "kernel_%d", "n": %d, "pad": "%s"}' % (k, i, b"ab" * i))
        )
    big = [(f"kernel_0{BIG_SUFFIXES[i]}", rng.randbytes(group_size + 1 + 17 * i)) for i in range(big_blobs)]
    ind, tri = INDUCTOR_ENV.digest, TRITON_ENV.digest
    artifacts: list[atpack.Artifact | atpack.UnknownArtifact] = [
        best_config(ind, 0),
        best_config(ind, 1),
        kernel_perf(ind, 0),
        gemm_timings(tri, 0),
        triton_autotune(tri, 0),
        triton_kernel(tri, 0, small[:2] + big),
        triton_kernel(tri, 1, small[2:]),
    ]
    return Content(
        environments=[INDUCTOR_ENV, TRITON_ENV, UNUSED_ENV],
        blobs=[(data, name.rsplit(".", 1)[1]) for name, data in small + big],
        artifacts=artifacts,
        annotations=[("org.example.model", "llama", False), ("org.example.run", "42", True)],
    )


def apply(writer: PackWriter, operations: Sequence[tuple[str, Any]]) -> None:
    for what, item in operations:
        if what == "env":
            writer.add_environment(item)
        elif what == "blob":
            writer.add_blob(item[0], hint=item[1])
        elif what == "artifact":
            writer.add(item)
        else:
            key, value, digested = item
            writer.annotate(key, value, digested=digested)


def pack_bytes(content: Content, *, shuffle_seed: int | None = None, **writer_options: Any) -> bytes:
    """Write `content` to memory (in shuffled order if a seed is given) and return the bytes."""
    ops = content.operations()
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(ops)
    out = io.BytesIO()
    writer = PackWriter(out, **writer_options)
    apply(writer, ops)
    writer.finish()
    return out.getvalue()


class BytesSource:
    """An in-memory `atpack.storage.RangeSource`, for reading packs that were never on disk."""

    def __init__(self, data: bytes, name: str = "<memory>") -> None:
        self.data = bytes(data)
        self.name = name
        self.size = len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.read(o, n) for o, n in ranges]

    def close(self) -> None:
        pass


def open_bytes(data: bytes, *, limits: atpack.Limits = DEFAULT_LIMITS) -> atpack.Pack:
    return atpack.Pack(BytesSource(data), limits=limits)


def read_everything(pack: atpack.Pack) -> dict[str, bytes]:
    """verify() the pack, then read every blob every artifact references, one by one and in
    one batch; return the blobs."""
    pack.verify()
    refs = sorted({ref for a in pack.artifacts for ref in a.blob_refs() if pack.has_blob(ref)})
    one_by_one = {ref: pack.read_blob(ref) for ref in refs}
    batched = dict(pack.read_blobs(refs))
    if batched != one_by_one:
        raise AssertionError(f"{pack.name}: blobs read in one batch differ from the same blobs read one by one")
    return one_by_one


# --------------------------------------------------------------------------- pack surgery


@dataclasses.dataclass(frozen=True)
class Footer:
    index_offset: int
    index_length: int
    index_size: int
    index_sha256: bytes
    major: int
    minor: int
    flags: int
    magic: bytes

    def pack(self) -> bytes:
        return FOOTER.pack(*dataclasses.astuple(self))


@dataclasses.dataclass(frozen=True)
class Header:
    magic: bytes
    major: int
    minor: int
    flags: int

    def pack(self) -> bytes:
        return HEADER.pack(*dataclasses.astuple(self))


def read_footer(data: bytes) -> Footer:
    return Footer(*FOOTER.unpack(data[-FOOTER.size :]))


def read_header(data: bytes) -> Header:
    return Header(*HEADER.unpack(data[: HEADER.size]))


def with_footer(data: bytes, **changes: Any) -> bytes:
    """`data` with some footer fields replaced (nothing else changes)."""
    footer = dataclasses.replace(read_footer(data), **changes)
    return data[: -FOOTER.size] + footer.pack()


def with_header(data: bytes, **changes: Any) -> bytes:
    """`data` with some header fields replaced (nothing else changes)."""
    header = dataclasses.replace(read_header(data), **changes)
    return header.pack() + data[HEADER.size :]


def with_version(data: bytes, major: int, minor: int) -> bytes:
    """`data` claiming format `major.minor` in both its header and its footer."""
    return with_header(with_footer(data, major=major, minor=minor), major=major, minor=minor)


def read_index(data: bytes) -> dict[str, Any]:
    """The index of a pack as plain JSON data: frames are ``[offset, length, size, sha256]``,
    blobs ``[digest, frame, offset, size]``, artifacts dicts."""
    footer = read_footer(data)
    compressed = data[footer.index_offset : footer.index_offset + footer.index_length]
    return msgspec.json.decode(zstandard.ZstdDecompressor().decompress(compressed))  # type: ignore[no-any-return]


def frames_region(data: bytes) -> bytes:
    """The bytes between the header and the index: every blob frame, back to back."""
    return data[HEADER.size : read_footer(data).index_offset]


def encode_index(index: dict[str, Any]) -> bytes:
    """Index JSON as the writer lays it out (sorted keys, compact). Artifacts given as bytes
    are inserted verbatim, so a test can plant non-canonical ones."""
    index = dict(index)
    if "artifacts" in index:
        index["artifacts"] = [msgspec.Raw(a) if isinstance(a, bytes) else a for a in index["artifacts"]]
    return msgspec.json.encode(index, order="sorted")


def assemble(index: dict[str, Any], *, frames: bytes, **footer_changes: Any) -> bytes:
    """A pack made of a format 1.0 header, `frames` (raw bytes of the frames region), `index`
    and a footer that locates and hashes it correctly (unless `footer_changes` say otherwise)."""
    return seal(encode_index(index), frames=frames, **footer_changes)


def seal(raw: bytes, *, frames: bytes, **footer_changes: Any) -> bytes:
    """Like `assemble`, with the index given as its text: any bytes, JSON or not."""
    compressed = compress_frame(raw)
    offset = HEADER.size + len(frames)
    footer = Footer(offset, len(compressed), len(raw), hashlib.sha256(compressed).digest(), 1, 0, 0, MAGIC)
    footer = dataclasses.replace(footer, **footer_changes)
    return Header(MAGIC, 1, 0, 0).pack() + frames + compressed + footer.pack()


def rewrite_index(
    data: bytes,
    mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    frames: bytes | None = None,
) -> bytes:
    """`data` with its index replaced by ``mutate(index)`` (or the index mutated in place),
    recompressed, and the footer rewritten to match. `frames` replaces the frames region."""
    index = read_index(data)
    result = mutate(index)
    if result is not None:
        index = result
    header, footer = read_header(data), read_footer(data)
    out = assemble(
        index,
        frames=frames_region(data) if frames is None else frames,
        major=footer.major,
        minor=footer.minor,
        flags=footer.flags,
        magic=footer.magic,
    )
    return header.pack() + out[HEADER.size :]


def artifact_bytes(artifact: dict[str, Any] | bytes) -> bytes:
    return artifact if isinstance(artifact, bytes) else canonical(artifact)


def sort_artifacts(index: dict[str, Any]) -> None:
    """Put the index's artifacts in the order a writer would: by the digest of their bytes."""
    index["artifacts"].sort(key=lambda a: digest_bytes(artifact_bytes(a)))


def compress_frame(data: bytes) -> bytes:
    """`data` as one zstd frame, compressed the way the writer does it (default level)."""
    return zstandard.ZstdCompressor(level=9, write_content_size=True, write_checksum=True).compress(data)


def frame_entry(offset: int, payload: bytes, size: int) -> list[Any]:
    return [offset, len(payload), size, hashlib.sha256(payload).hexdigest()]


def peak_allocation_while(fn: Callable[[], object]) -> int:
    """The most memory Python had allocated at once while `fn` ran (tracemalloc's peak)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- made elsewhere


def made_elsewhere(source: str, target: str, **fields: str | None) -> None:
    """Write `source`'s pack to `target` as if it had been made where the environment `fields`
    differ (``torch_version="2.12.0"``, ``compute_capability="8.0"``): every artifact the same,
    recorded under the changed environments. For tests of what a pack made on another GPU or
    release does here."""
    from atpack.pack import create, open_pack

    with open_pack(source) as pack, create(target) as writer:
        moved = {}
        for digest, environment in pack.manifest.environments.items():
            moved[digest] = writer.add_environment(msgspec.structs.replace(environment, **fields))
        artifacts = [a for a in pack.artifacts if isinstance(a, atpack.Artifact)]
        wanted = sorted({ref for a in artifacts for ref in a.blob_refs()})
        for _, data in pack.read_blobs(wanted):
            writer.add_blob(data)
        for artifact in artifacts:
            writer.add(msgspec.structs.replace(artifact, env=moved[artifact.env]))
