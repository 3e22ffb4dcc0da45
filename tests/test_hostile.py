"""Hostile packs and hostile cache folders: atpack refuses them with a typed error and writes
nothing, neither in the cache folders nor anywhere else.

Every test populates a *site*: an Inductor and a Triton cache folder that already hold files,
and a folder outside them with a file of its own. The full listing of the site (every folder,
every file's bytes, every symlink) is taken before and after: for every refusal below it is
unchanged.

Two levels of refusal:

* the pack itself is bad (a size, count or offset that lies, a name that leaves its folder,
  which the index schema forbids, two answers to one question): opening it raises a
  `FormatError` (`LimitError`, `IntegrityError`) and populate writes nothing at all;
* the pack is well-formed but what an artifact would write is unsafe here (a symlink in the
  cache folder, a Megacache key that points elsewhere, two artifacts that disagree about a
  file): populate refuses that artifact (its outcome is ``failed`` and names the
  `AtpackError` subclass) and goes on with the others.

Hostile packs are made from valid ones with the surgery tools of `atpack.testing.packs`, which
change one thing and fix every digest and offset around it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import atpack
from atpack.artifacts import ChoiceTiming, GemmEntry, GemmSystem, KernelFile, MegacacheAutotune, TritonHostModule
from atpack.digest import canonical, digest_bytes
from atpack.populate import PopulateReport, populate
from atpack.testing.faults import listing
from atpack.testing.packs import (
    FOOTER,
    HEADER,
    INDUCTOR_ENV,
    MAGIC,
    TRITON_ENV,
    alnum,
    assemble,
    best_config,
    compress_frame,
    frame_entry,
    frames_region,
    gemm_timings,
    hex64,
    kernel_perf,
    pack_bytes,
    pack_of,
    peak_allocation_while,
    read_index,
    rewrite_index,
    sample_content,
    seal,
    sort_artifacts,
    triton_autotune,
    triton_kernel,
    with_footer,
)

GROUP = 256  # a small group size: the sample pack has blobs in shared frames and one in its own


class Site:
    """Cache folders with something in them, a folder outside them, and the packs aside."""

    def __init__(self, root: Path) -> None:
        self.root = root / "site"
        self.inductor = self.root / "caches" / "inductor"
        self.triton = self.root / "caches" / "triton"
        self.outside = self.root / "outside"
        self.packs = root / "packs"
        for folder in (self.inductor / "zz", self.triton / ("T" * 32), self.outside, self.packs):
            folder.mkdir(parents=True)
        (self.inductor / "zz" / "mine.best_config").write_text('{"XBLOCK": 1, "num_warps": 1, "num_stages": 1}')
        (self.triton / ("T" * 32) / "mine.json").write_text("{}")
        (self.outside / "victim.txt").write_text("must stay as it is")

    def snapshot(self) -> dict[str, Any]:
        return listing(self.root)

    def put(self, data: bytes, name: str = "hostile.atpack") -> Path:
        path = self.packs / name
        path.write_bytes(data)
        return path

    def populate(self, pack: bytes | Path, **options: Any) -> PopulateReport:
        path = self.put(pack) if isinstance(pack, bytes) else pack
        return populate(
            path, inductor_dir=str(self.inductor), triton_dir=str(self.triton), ignore_environment=True, **options
        )

    def refuses_pack(self, data: bytes, error: type[atpack.AtpackError], match: str, **options: Any) -> None:
        """Populating `data` raises `error` (matching `match`) and changes nothing."""
        before = self.snapshot()
        with pytest.raises(error, match=match):
            self.populate(data, **options)
        assert self.snapshot() == before, "populate wrote something"

    def refuses_artifacts(self, data: bytes, error: str, match: str, *, refused: int = 1) -> PopulateReport:
        """Populating `data` fails `refused` artifacts with `error` (a class name; the detail
        contains `match`), writes nothing, and does not raise."""
        before = self.snapshot()
        report = self.populate(data)
        failed = [o for o in report.outcomes if o.action == "failed"]
        assert len(failed) == refused, report.format(verbose=True)
        for outcome in failed:
            assert outcome.error == error, outcome
            assert match in outcome.detail, outcome
        assert self.snapshot() == before, "populate wrote something"
        return report


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture(scope="module")
def sample() -> bytes:
    """A valid pack of every kind populate writes as files (two environments, blobs in shared
    frames and one in a frame of its own)."""
    return pack_bytes(sample_content(group_size=GROUP), group_size=GROUP)


def test_the_sample_pack_populates_cleanly(site: Site, sample: bytes) -> None:
    # the premise of every test below: without the defect, the same pack is written
    report = site.populate(sample)
    assert report.ok and report.count("written") + report.count("merged") == 7
    assert site.snapshot()["outside/victim.txt"] == ("file", b"must stay as it is")


def with_artifact(data: bytes, kind: str, change: Callable[[dict[str, Any]], None]) -> bytes:
    """`data` with the first artifact of `kind` changed in its index (artifacts re-sorted)."""

    def mutate(index: dict[str, Any]) -> None:
        change(next(a for a in index["artifacts"] if a["kind"] == kind))
        sort_artifacts(index)

    return rewrite_index(data, mutate)


# =========================================================================== decompression bombs


def test_an_index_declaring_a_terabyte_is_refused_from_the_footer_before_any_allocation(
    site: Site, sample: bytes
) -> None:
    data = with_footer(sample, index_size=1 << 40)
    peak = peak_allocation_while(lambda: site.refuses_pack(data, atpack.LimitError, "exceeds the limit"))
    assert peak < 4 << 20


def zstd_frame_claiming(size: int, *, raw_blocks: int = 1) -> bytes:
    """A zstd frame whose header declares `size` bytes but whose blocks hold `raw_blocks` bytes
    (one-byte raw blocks): a few bytes on the wire that claim a lot."""
    out = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", size)  # 8-byte content size, single segment
    for i in range(raw_blocks):
        header = (1 if i == raw_blocks - 1 else 0) | (0 << 1) | (1 << 3)  # last?, raw, 1 byte
        out += header.to_bytes(3, "little") + b"x"
    return out


def test_an_index_of_a_few_bytes_claiming_256_mib_is_refused_before_decompressing(site: Site) -> None:
    lie = zstd_frame_claiming(256 << 20)  # 17 bytes; no zstd frame expands more than 32768 times
    footer = FOOTER.pack(HEADER.size, len(lie), 256 << 20, hashlib.sha256(lie).digest(), 1, 0, 0, MAGIC)
    data = HEADER.pack(MAGIC, 1, 0, 0) + lie + footer
    peak = peak_allocation_while(lambda: site.refuses_pack(data, atpack.LimitError, "no zstd frame of 17 bytes"))
    assert peak < 4 << 20


def test_a_frame_declaring_a_terabyte_is_refused_when_the_pack_is_opened(site: Site, sample: bytes) -> None:
    def declare(index: dict[str, Any]) -> None:
        (blob,) = [b for b in index["blobs"] if b[3] > GROUP]  # the blob with a frame of its own
        index["frames"][blob[1]][2] = blob[3] = 1 << 40  # the tables agree: only the size lies

    data = rewrite_index(sample, declare)
    peak = peak_allocation_while(lambda: site.refuses_pack(data, atpack.LimitError, "declares 1099511627776 bytes"))
    assert peak < 4 << 20


def test_a_frame_of_17_bytes_claiming_256_mib_is_refused_when_the_pack_is_opened(site: Site) -> None:
    claim = 256 << 20
    lie = zstd_frame_claiming(claim)
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"")])
    blob = kernel.files[0].blob
    index = read_index(pack_of(kernel, blobs=(b"",)))
    index.update(frames=[frame_entry(HEADER.size, lie, claim)], blobs=[[blob, 0, 0, claim]])
    site.refuses_pack(assemble(index, frames=lie), atpack.LimitError, "no zstd frame of 17 bytes holds")


def lying_frame_pack(claim: int) -> tuple[bytes, int]:
    """A pack of one kernel whose only blob sits in a frame that declares `claim` bytes, and is
    long enough for that (1/32768 of it), but holds 1 byte per 4: a frame the tables cannot
    tell from a real one. Returns the pack and the frame's length."""
    blocks = claim // (4 * 32768) + 1
    lie = zstd_frame_claiming(claim, raw_blocks=blocks)
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"\0" * claim)])
    index = read_index(pack_of(kernel, blobs=(b"\0" * claim,)))
    index.update(frames=[frame_entry(HEADER.size, lie, claim)], blobs=[[kernel.files[0].blob, 0, 0, claim]])
    return assemble(index, frames=lie), len(lie)


def test_a_frame_lying_about_its_size_is_refused_on_read_having_allocated_at_most_its_declared_size(
    site: Site,
) -> None:
    claim = 64 << 20
    data, length = lying_frame_pack(claim)
    assert length < claim // 30_000  # 2 KiB on the wire
    lenient = atpack.Limits(max_expansion=1 << 15)  # past the expansion limit (below), to reach the frame

    def populate_lenient() -> None:
        report = site.populate(data, limits=lenient)
        assert [(o.action, o.error) for o in report.outcomes] == [("failed", "IntegrityError")]
        assert "frame 0" in report.outcomes[0].detail

    peak = peak_allocation_while(populate_lenient)
    assert peak < claim + (4 << 20)  # the declared size, which Limits.max_frame_size caps (below)


def test_a_few_kib_declaring_far_more_decompressed_is_refused_when_opened(site: Site) -> None:
    data, _ = lying_frame_pack(64 << 20)
    peak = peak_allocation_while(lambda: site.refuses_pack(data, atpack.LimitError, "over 1024x"))
    assert peak < 4 << 20  # nothing decompressed


@pytest.mark.parametrize(
    "command",
    [["inspect", "-v"], ["verify"], ["populate", "--dry-run"], ["megacache", "-o", "{out}"], ["merge", "-o", "{out}"]],
    ids=lambda c: c[0],
)
def test_every_command_refuses_a_pack_that_declares_far_more_than_it_holds(site: Site, command: list[str]) -> None:
    path = site.put(lying_frame_pack(64 << 20)[0])
    out = site.packs / "out.bin"
    argv = [sys.executable, "-m", "atpack", command[0], str(path), *(a.format(out=out) for a in command[1:])]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "over 1024x" in result.stderr and not out.exists()


def repeated_gemm_index(entries: int, candidates: int) -> bytes:
    """A pack whose one GEMM timing artifact repeats one candidate list in every entry: zstd
    stores it once, so a few hundred KB declare an index of hundreds of MiB (gigabytes decoded)."""
    env = canonical(INDUCTOR_ENV)
    timings = b"[" + b",".join(b'["c%d",1.0]' % i for i in range(candidates)) + b"]"
    gemms = b",".join(b'{"inputs":"i%d","op":"mm","precision":"p","timings":%s}' % (n, timings) for n in range(entries))
    artifact = b'{"entries":[%s],"env":"%s","kind":"inductor.gemm_timings/1","system":{"hash":"%s"}}' % (
        gemms,
        INDUCTOR_ENV.digest.encode(),
        b"cd" * 32,
    )
    index = b'{"annotations":{},"artifacts":[%s],"blobs":[],"digested_annotations":[],"environments":[%s],"frames":[]}'
    return seal(index % (artifact, env), frames=b"")


def test_an_index_that_expands_over_32x_is_refused_before_it_is_decompressed(site: Site) -> None:
    data = repeated_gemm_index(2000, 500)  # 6 MiB of index from a few KB
    assert len(data) < 64 << 10
    peak = peak_allocation_while(lambda: site.refuses_pack(data, atpack.LimitError, "over 32x"))
    assert peak < 4 << 20  # nothing decompressed, nothing decoded


def test_the_writer_refuses_an_index_readers_would_refuse(tmp_path: Path) -> None:
    entries = tuple(
        GemmEntry(op="mm", inputs=f"i{n}", precision="p", timings=tuple(ChoiceTiming(f"c{i}", 1.0) for i in range(500)))
        for n in range(1000)
    )
    artifact = atpack.InductorGemmTimings(env=INDUCTOR_ENV.digest, system=GemmSystem(hash="cd" * 32), entries=entries)
    with pytest.raises(atpack.LimitError, match=r"readers would refuse it\): .* \(over 32x"):
        pack_of(artifact)


def test_a_frame_declaring_more_than_the_frame_limit_is_refused_before_it_is_read(site: Site) -> None:
    data, _ = lying_frame_pack(64 << 20)
    path = site.put(data)
    before = site.snapshot()
    with pytest.raises(atpack.LimitError, match="over the limit of 33554432"):
        atpack.open(path, limits=atpack.Limits(max_frame_size=32 << 20))
    assert site.snapshot() == before


def test_a_blob_declaring_a_terabyte_is_refused_when_the_pack_is_opened(site: Site, sample: bytes) -> None:
    def declare(index: dict[str, Any]) -> None:
        index["blobs"][0][3] = 1 << 40

    site.refuses_pack(rewrite_index(sample, declare), atpack.LimitError, "runs past the end of frame")


def test_a_kernel_file_declaring_a_size_its_blob_does_not_have_is_refused(site: Site) -> None:
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"binary")])
    lying = msgspec.structs.replace(kernel, files=(KernelFile("kernel_0.json", kernel.files[0].blob, 1 << 62),))
    site.refuses_artifacts(pack_of(lying, blobs=(b"binary",)), "FormatError", "declares 4611686018427387904 bytes")


def test_a_megacache_entry_declaring_a_size_its_blob_does_not_have_is_refused(site: Site) -> None:
    content = b'{"XBLOCK": 8, "num_warps": 2, "num_stages": 1}'
    entry = MegacacheAutotune(
        env=INDUCTOR_ENV.digest, entry_key=best_config("", 0).path, seq=0, content=digest_bytes(content), size=1 << 40
    )
    site.refuses_artifacts(pack_of(entry, blobs=(content,)), "FormatError", "declares 1099511627776 bytes")


# =========================================================================== absurd counts


def test_more_environments_than_the_limit_are_refused(site: Site) -> None:
    site.refuses_pack(assemble({"environments": [{}] * 4097}, frames=b""), atpack.LimitError, "4097 environments")


@pytest.mark.parametrize("table", ["frames", "blobs", "artifacts"])
def test_tables_longer_than_their_limit_are_refused(site: Site, sample: bytes, table: str) -> None:
    count = len(read_index(sample)[table])
    path = site.put(sample)
    before = site.snapshot()
    with pytest.raises(atpack.LimitError, match=f"{count} {table} exceeds the limit of {count - 1}"):
        atpack.open(path, limits=atpack.Limits(**{f"max_{table}": count - 1}))
    assert site.snapshot() == before


def test_a_tiny_pack_listing_far_too_many_environments_is_refused_before_they_are_decoded(site: Site) -> None:
    data = assemble({"environments": [{}] * 300_000}, frames=b"")
    assert len(data) < 1024
    peak = peak_allocation_while(
        lambda: site.refuses_pack(data, atpack.LimitError, "environments exceeds the limit of 4096")
    )
    assert peak < 8 << 20


# =========================================================================== offsets


def test_overlapping_blobs_are_refused(site: Site, sample: bytes) -> None:
    def overlap(index: dict[str, Any]) -> None:
        frame = next(f for f in range(len(index["frames"])) if sum(b[1] == f for b in index["blobs"]) >= 2)
        second = sorted((b for b in index["blobs"] if b[1] == frame), key=lambda b: b[2])[1]
        second[2] -= 1

    site.refuses_pack(rewrite_index(sample, overlap), atpack.LimitError, "overlaps or leaves a gap")


def test_a_blob_starting_past_the_end_of_its_frame_is_refused(site: Site, sample: bytes) -> None:
    def move(index: dict[str, Any]) -> None:
        blob = index["blobs"][0]
        blob[2] = index["frames"][blob[1]][2] + 10

    site.refuses_pack(rewrite_index(sample, move), atpack.LimitError, "overlaps or leaves a gap")


def test_a_blob_in_a_frame_that_does_not_exist_is_refused(site: Site, sample: bytes) -> None:
    def move(index: dict[str, Any]) -> None:
        (blob,) = [b for b in index["blobs"] if b[3] > GROUP]  # alone in its frame: moving it leaves no gap
        blob[1] = 10**9

    site.refuses_pack(rewrite_index(sample, move), atpack.LimitError, "does not exist")


def test_a_frame_starting_past_the_end_of_the_file_is_refused(site: Site, sample: bytes) -> None:
    def move(index: dict[str, Any]) -> None:
        index["frames"][0][0] = 1 << 50

    site.refuses_pack(rewrite_index(sample, move), atpack.LimitError, "frame 0 starts at")


def test_a_gap_between_frames_is_refused(site: Site, sample: bytes) -> None:
    region = frames_region(sample)
    end0 = read_index(sample)["frames"][0][1]

    def shift(index: dict[str, Any]) -> None:
        for f in index["frames"][1:]:
            f[0] += 1

    gapped = rewrite_index(sample, shift, frames=region[:end0] + b"\0" + region[end0:])
    site.refuses_pack(gapped, atpack.LimitError, "contiguous")


@pytest.mark.parametrize("field, value", [("index_offset", 0), ("index_offset", 1 << 60), ("index_length", 1 << 60)])
def test_a_footer_locating_the_index_anywhere_but_before_it_is_refused(
    site: Site, sample: bytes, field: str, value: int
) -> None:
    site.refuses_pack(with_footer(sample, **{field: value}), atpack.LimitError, "does not end at the footer")


# =========================================================================== names that leave their folder

HEX = hex64("escape")
ESCAPES: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    # id: (kind, change)
    "best_config path with ..": ("inductor.best_config/1", lambda a: a.update(path=f"../{HEX}.best_config")),
    "best_config path climbing out of its shard": (
        "inductor.best_config/1",
        lambda a: a.update(path=f"ab/../../../outside/{HEX}.best_config"),
    ),
    "best_config absolute path": ("inductor.best_config/1", lambda a: a.update(path=f"/tmp/{HEX}.best_config")),
    "best_config path with a NUL byte": ("inductor.best_config/1", lambda a: a.update(path=f"ab/{HEX}\0.best_config")),
    "best_config path of 600 characters": (
        "inductor.best_config/1",
        lambda a: a.update(path="ab/" + "a" * 600 + ".best_config"),
    ),
    "kernel_perf path with ..": ("inductor.kernel_perf/1", lambda a: a.update(path="../c" + "a" * 51 + ".kernel_perf")),
    "GEMM system hash with ..": ("inductor.gemm_timings/1", lambda a: a["system"].update(hash="../../" + HEX[:58])),
    "autotune cache key with ..": ("triton.autotune/1", lambda a: a.update(cache_key="../../" + "A" * 20)),
    "autotune function name with a slash": ("triton.autotune/1", lambda a: a.update(fn_name="x/../../evil")),
    "kernel cache key that is ..": ("triton.kernel/1", lambda a: a.update(cache_key="..")),
    "kernel cache key with a slash": ("triton.kernel/1", lambda a: a.update(cache_key="A" * 20 + "/../B")),
    "kernel name with ..": ("triton.kernel/1", lambda a: a.update(name="../../evil")),
    "kernel file name with ..": ("triton.kernel/1", lambda a: a["files"][0].__setitem__(0, "../../evil.cubin")),
    "kernel file name that is absolute": ("triton.kernel/1", lambda a: a["files"][0].__setitem__(0, "/etc/passwd")),
    "kernel file name with a NUL byte": ("triton.kernel/1", lambda a: a["files"][0].__setitem__(0, "a\0.cubin")),
    "kernel file name of 256 characters": ("triton.kernel/1", lambda a: a["files"][0].__setitem__(0, "a" * 256)),
    "kernel file name that is a hidden temporary": (
        "triton.kernel/1",
        lambda a: a["files"][0].__setitem__(0, ".atpack-1-2-3.tmp"),
    ),
    "kernel group naming ..": ("triton.kernel/1", lambda a: a.update(group=["../../evil.json"])),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_a_name_that_leaves_its_folder_is_refused_when_the_pack_is_opened(site: Site, sample: bytes, case: str) -> None:
    kind, change = ESCAPES[case]
    site.refuses_pack(with_artifact(sample, kind, change), atpack.FormatError, "artifact|index")


def test_a_host_module_file_name_with_dot_dot_is_refused_when_the_pack_is_opened(site: Site) -> None:
    module = TritonHostModule(
        env=TRITON_ENV.digest, cache_key="M" * 52, files=(KernelFile("cuda_utils.so", digest_bytes(b"elf"), 3),)
    )
    data = with_artifact(
        pack_of(module, blobs=(b"elf",)), "triton.host_module/1", lambda a: a["files"][0].__setitem__(0, "../x.so")
    )
    site.refuses_pack(data, atpack.FormatError, "artifact|index", trust_pickles=True)


def test_a_megacache_key_of_more_than_4096_characters_is_refused_when_the_pack_is_opened(site: Site) -> None:
    entry = MegacacheAutotune(
        env=INDUCTOR_ENV.digest, entry_key=best_config("", 0).path, seq=0, content=digest_bytes(b"{}"), size=2
    )
    data = with_artifact(
        pack_of(entry, blobs=(b"{}",)), "megacache.autotune/1", lambda a: a.update(key="a/" * 2100 + "x")
    )
    site.refuses_pack(data, atpack.FormatError, "artifact|index")


def test_a_kernel_name_too_long_for_its_group_file_is_refused(site: Site) -> None:
    # the schema allows 250 characters (its metadata is <name>.json); "__grp__<name>.json" would be 262
    kernel = msgspec.structs.replace(
        triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"{}")]),
        name="k" * 250,
        files=(KernelFile("k" * 250 + ".json", digest_bytes(b"{}"), 2),),
    )
    site.refuses_artifacts(pack_of(kernel, blobs=(b"{}",)), "UnsafeContentError", "longer than 255 characters")


def megacache_autotune(key: str) -> bytes:
    content = b'{"XBLOCK": 8, "num_warps": 2, "num_stages": 1}'
    entry = MegacacheAutotune(
        env=INDUCTOR_ENV.digest, entry_key=key, seq=0, content=digest_bytes(content), size=len(content)
    )
    return pack_of(entry, blobs=(content,))


# torch writes a Megacache autotune entry to os.path.join(<inductor cache>, key), replacing what is
# there, and atpack replays these entries without trust_pickles (they are data): the key is checked
# before torch sees it
MEGACACHE_KEYS = {
    "climbing out with ..": f"../../{HEX}.best_config",
    "climbing out of a shard": f"ab/../../../outside/{HEX}.best_config",
    "an absolute path": f"/tmp/atpack-hostile-test/{HEX}.best_config",
    "a NUL byte": f"ab/{HEX}.best_config\0",
    "a Python module, not a .best_config": "ab/c" + alnum("module", 51) + ".py",
    "an over-long name": "ab/" + "a" * 300 + ".best_config",
    # found by tools/fuzz_pack.py pack-structural: a .best_config name anywhere else in the folder
    "a file in the FX graph cache, whose files torch unpickles": f"fxgraph/ab/f{alnum('fx', 51)}/{HEX}.best_config",
    "a file in AOTAutograd's cache": f"aotautograd/ab/a{alnum('aot', 51)}/{HEX}.best_config",
    "a file in a Triton folder inside": f"triton/0/{'A' * 52}/{HEX}.best_config",
    "a .best_config at the folder's top": f"{HEX}.best_config",
    "a .best_config two folders deep": f"ab/cd/{HEX}.best_config",
}


@pytest.mark.parametrize("case", list(MEGACACHE_KEYS))
def test_a_megacache_autotune_key_pointing_outside_a_best_config_file_is_refused(site: Site, case: str) -> None:
    key = MEGACACHE_KEYS[case].replace("/tmp/atpack-hostile-test", str(site.outside))
    site.refuses_artifacts(megacache_autotune(key), "UnsafeContentError", "refusing")


def test_a_megacache_autotune_entry_keeps_the_best_config_file_the_folder_holds(site: Site) -> None:
    # torch's hook replaces whatever is at its key: found by tools/fuzz_pack.py pack-structural
    key = best_config("", 0).path
    (site.inductor / key).parent.mkdir()
    (site.inductor / key).write_text('{"XBLOCK": 1, "num_warps": 1, "num_stages": 1}')
    before = site.snapshot()
    report = site.populate(megacache_autotune(key))
    assert [(o.action, o.detail.split(";")[0]) for o in report.outcomes] == [
        ("kept", f"kept 1 existing file(s) that differ: {key.split('/')[-1]}")
    ]
    assert site.snapshot() == before


def test_a_megacache_autotune_entry_already_in_place_is_present_and_not_written_again(site: Site) -> None:
    data = megacache_autotune(best_config("", 0).path)
    assert [o.action for o in site.populate(data).outcomes] == ["written"]
    before = site.snapshot()
    assert [o.action for o in site.populate(data).outcomes] == ["present"]
    assert site.snapshot() == before


# =========================================================================== symlinks in the target


def best_config_pack(n: int = 0) -> tuple[bytes, str]:
    artifact = best_config(INDUCTOR_ENV.digest, n)
    return pack_of(artifact), artifact.path


def test_a_shard_folder_symlinked_elsewhere_is_not_written_through(site: Site) -> None:
    data, path = best_config_pack()
    (site.inductor / path.split("/")[0]).symlink_to(site.outside, target_is_directory=True)
    site.refuses_artifacts(data, "UnsafeContentError", "it is a symlink")


def test_a_kernel_perf_shard_folder_symlinked_elsewhere_is_not_written_through(site: Site) -> None:
    artifact = kernel_perf(INDUCTOR_ENV.digest, 0)
    (site.inductor / artifact.path.split("/")[0]).symlink_to(site.outside, target_is_directory=True)
    site.refuses_artifacts(pack_of(artifact), "UnsafeContentError", "it is a symlink")


def test_a_megacache_key_in_a_symlinked_shard_folder_is_refused(site: Site) -> None:
    key = best_config("", 0).path
    (site.inductor / key.split("/")[0]).symlink_to(site.outside, target_is_directory=True)
    site.refuses_artifacts(megacache_autotune(key), "UnsafeContentError", "it is a symlink")


def test_a_triton_kernel_folder_symlinked_elsewhere_is_not_written_through(site: Site) -> None:
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"{}"), ("kernel_0.cubin", b"elf")])
    (site.triton / kernel.cache_key).symlink_to(site.outside, target_is_directory=True)
    site.refuses_artifacts(pack_of(kernel, blobs=(b"{}", b"elf")), "UnsafeContentError", "it is a symlink")


def test_a_triton_autotune_folder_symlinked_elsewhere_is_not_written_through(site: Site) -> None:
    autotune = triton_autotune(TRITON_ENV.digest, 0)
    (site.triton / autotune.cache_key).symlink_to(site.outside, target_is_directory=True)
    site.refuses_artifacts(pack_of(autotune), "UnsafeContentError", "it is a symlink")


def test_a_host_module_folder_symlinked_elsewhere_is_not_written_through(site: Site) -> None:
    module = TritonHostModule(
        env=TRITON_ENV.digest, cache_key="M" * 52, files=(KernelFile("cuda_utils.so", digest_bytes(b"elf"), 3),)
    )
    (site.triton / module.cache_key).symlink_to(site.outside, target_is_directory=True)
    before = site.snapshot()
    report = site.populate(pack_of(module, blobs=(b"elf",)), trust_pickles=True)
    assert [(o.action, o.error) for o in report.outcomes] == [("failed", "UnsafeContentError")]
    assert site.snapshot() == before


@pytest.mark.parametrize("folder", ["cache", "locks"])
def test_a_gemm_timing_or_lock_folder_symlinked_elsewhere_is_not_written_through(site: Site, folder: str) -> None:
    (site.inductor / folder).symlink_to(site.outside, target_is_directory=True)
    site.refuses_artifacts(pack_of(gemm_timings(TRITON_ENV.digest, 0)), "UnsafeContentError", "it is a symlink")


def test_a_gemm_lock_file_symlinked_elsewhere_is_not_opened(site: Site) -> None:
    artifact = gemm_timings(TRITON_ENV.digest, 0)
    (site.inductor / "locks").mkdir()
    (site.inductor / "locks" / f"{artifact.system.hash}.atpack.lock").symlink_to(site.outside / "victim.txt")
    site.refuses_artifacts(pack_of(artifact), "UnsafeContentError", "refusing to lock")


def test_a_gemm_timing_file_symlinked_elsewhere_is_neither_read_nor_replaced(site: Site) -> None:
    artifact = gemm_timings(TRITON_ENV.digest, 0)
    (site.outside / "timings.json").write_text('{"system": {}, "cache": {}}')
    (site.inductor / "cache").mkdir()
    (site.inductor / "cache" / artifact.system.hash).symlink_to(site.outside / "timings.json")
    site.refuses_artifacts(pack_of(artifact), "UnsafeContentError", "it is a symlink")


def test_a_folder_where_the_gemm_timing_file_belongs_is_refused(site: Site) -> None:
    artifact = gemm_timings(TRITON_ENV.digest, 0)
    (site.inductor / "cache" / artifact.system.hash).mkdir(parents=True)
    site.refuses_artifacts(pack_of(artifact), "CacheFileError", "a folder, where a file belongs")


def test_a_fifo_where_the_gemm_timing_file_belongs_is_refused_without_waiting_for_a_writer(site: Site) -> None:
    artifact = gemm_timings(TRITON_ENV.digest, 0)
    (site.inductor / "cache").mkdir()
    os.mkfifo(site.inductor / "cache" / artifact.system.hash)
    site.refuses_artifacts(pack_of(artifact), "CacheFileError", "not a regular file")


def test_a_symlink_where_a_result_belongs_is_kept_neither_followed_nor_replaced(site: Site) -> None:
    data, path = best_config_pack()
    (site.inductor / path).parent.mkdir()
    (site.inductor / path).symlink_to(site.outside / "victim.txt")
    before = site.snapshot()
    report = site.populate(data)
    assert [o.action for o in report.outcomes] == ["kept"]
    assert site.snapshot() == before


def test_a_symlink_inside_a_kernel_folder_keeps_the_whole_kernel_as_it_is(site: Site) -> None:
    # writing the other files and the group file would make Triton load the symlink's target as
    # part of the pack's kernel: nothing of that kernel is written
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"{}"), ("kernel_0.cubin", b"elf")])
    folder = site.triton / kernel.cache_key
    folder.mkdir()
    (folder / "kernel_0.cubin").symlink_to(site.outside / "victim.txt")
    before = site.snapshot()
    report = site.populate(pack_of(kernel, blobs=(b"{}", b"elf")))
    assert [o.action for o in report.outcomes] == ["kept"]
    assert site.snapshot() == before


def test_a_file_where_a_shard_folder_belongs_fails_that_artifact_only(site: Site) -> None:
    data, path = best_config_pack()
    (site.inductor / path.split("/")[0]).write_text("not a folder")
    site.refuses_artifacts(data, "StorageError", "Not a directory")


def test_the_cache_folder_itself_may_be_a_symlink(site: Site, tmp_path: Path) -> None:
    # users point ~/.triton/cache at a bigger disk: only folders inside the cache folder are checked
    real = tmp_path / "bigger-disk" / "inductor"
    real.mkdir(parents=True)
    link = tmp_path / "inductor-link"
    link.symlink_to(real, target_is_directory=True)
    data, path = best_config_pack()
    report = populate(site.put(data), inductor_dir=str(link), triton_dir=str(site.triton), ignore_environment=True)
    assert report.ok and (real / path).is_file()


def test_one_hostile_artifact_does_not_stop_the_others(site: Site) -> None:
    good, bad = best_config(INDUCTOR_ENV.digest, 1), best_config(INDUCTOR_ENV.digest, 0)
    (site.inductor / bad.path.split("/")[0]).symlink_to(site.outside, target_is_directory=True)
    report = site.populate(pack_of(good, bad))
    assert {o.key: o.action for o in report.outcomes} == {good.path: "written", bad.path: "failed"}
    assert (site.inductor / good.path).is_file()
    assert sorted(os.listdir(site.outside)) == ["victim.txt"]


# =========================================================================== duplicates


def test_the_same_artifact_twice_is_refused_when_the_pack_is_opened(site: Site, sample: bytes) -> None:
    def duplicate(index: dict[str, Any]) -> None:
        index["artifacts"].append(index["artifacts"][0])
        sort_artifacts(index)

    site.refuses_pack(rewrite_index(sample, duplicate), atpack.FormatError, "a duplicate or a conflict")


def test_two_answers_for_one_file_in_one_environment_are_refused_when_the_pack_is_opened(
    site: Site, sample: bytes
) -> None:
    def conflict(index: dict[str, Any]) -> None:
        first = next(a for a in index["artifacts"] if a["kind"] == "inductor.best_config/1")
        index["artifacts"].append({**first, "num_warps": first["num_warps"] * 2})
        sort_artifacts(index)

    site.refuses_pack(rewrite_index(sample, conflict), atpack.FormatError, "a duplicate or a conflict")


def test_the_same_blob_twice_in_the_blob_table_is_refused(site: Site) -> None:
    payload = compress_frame(b"twice" * 2)
    d = digest_bytes(b"twice")
    index = {"frames": [frame_entry(HEADER.size, payload, 10)], "blobs": [[d, 0, 0, 5], [d, 0, 5, 5]]}
    site.refuses_pack(assemble(index, frames=payload), atpack.FormatError, "duplicate")


OTHER_ENV = atpack.Environment(torch_version="2.9.0", triton_version="3.5.0")


def test_two_environments_writing_different_content_to_one_file_are_both_refused(site: Site) -> None:
    # both apply here (or the environment is ignored): which one is right is not for populate to guess
    mine = best_config(INDUCTOR_ENV.digest, 0)
    theirs = msgspec.structs.replace(best_config(OTHER_ENV.digest, 0), num_warps=16)
    data = pack_of(mine, theirs, envs=(INDUCTOR_ENV, OTHER_ENV))
    site.refuses_artifacts(data, "FormatError", "writes different content there", refused=2)


def test_two_environments_writing_the_same_content_to_one_file_are_both_fine(site: Site) -> None:
    mine, theirs = best_config(INDUCTOR_ENV.digest, 0), best_config(OTHER_ENV.digest, 0)
    report = site.populate(pack_of(mine, theirs, envs=(INDUCTOR_ENV, OTHER_ENV)))
    assert report.ok and (site.inductor / mine.path).is_file()


def kernel_pack_with_files(files: list[tuple[str, bytes]]) -> bytes:
    """A pack of kernel_0 whose file list is `files` (name, content): the schema allows any
    plain names, the kind's own check does not (the writer would refuse it)."""
    meta = b'{"name": "kernel_0"}'
    contents = {digest_bytes(data): data for _, data in files}
    data = pack_of(triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta)]), blobs=(meta, *contents.values()))
    return with_artifact(
        data,
        "triton.kernel/1",
        lambda a: a.update(files=[[name, digest_bytes(d), len(d)] for name, d in [("kernel_0.json", meta), *files]]),
    )


def test_a_kernel_listing_one_file_twice_with_different_content_is_refused_when_the_pack_is_opened(
    site: Site,
) -> None:
    data = kernel_pack_with_files([("kernel_0.cubin", b"first"), ("kernel_0.cubin", b"second")])
    site.refuses_pack(data, atpack.FormatError, "'kernel_0.cubin' is listed twice")


def test_a_kernel_file_named_like_its_group_file_is_refused_when_the_pack_is_opened(site: Site) -> None:
    data = kernel_pack_with_files([("__grp__kernel_0.json", b"forged")])
    site.refuses_pack(data, atpack.FormatError, "'__grp__kernel_0.json' is not a file Triton's compiler writes")


def test_a_kernel_file_named_like_an_autotune_result_is_refused_when_the_pack_is_opened(site: Site) -> None:
    data = kernel_pack_with_files([("kernel_0.autotune.json", b"[]")])
    site.refuses_pack(data, atpack.FormatError, "'kernel_0.autotune.json' is not a file Triton's compiler writes")


def test_a_folder_where_a_kernels_group_file_belongs_keeps_that_kernel_folder_as_it_is(site: Site) -> None:
    # the group file makes the kernel visible to Triton: something already in its place is not
    # ours to replace, so nothing of that kernel is written, and populate goes on with the others
    meta = b'{"name": "kernel_0"}'
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta)])
    other = best_config(INDUCTOR_ENV.digest, 0)
    group = site.triton / kernel.cache_key / "__grp__kernel_0.json"
    group.mkdir(parents=True)
    report = site.populate(pack_of(kernel, other, blobs=(meta,)))
    outcomes = {o.kind: o for o in report.outcomes}
    assert outcomes["triton.kernel/1"].action == "kept"
    assert outcomes["inductor.best_config/1"].action == "written"
    assert sorted(os.listdir(group.parent)) == ["__grp__kernel_0.json"]
    assert group.is_dir() and not list(group.iterdir())
