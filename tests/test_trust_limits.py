"""Bounded resources on every path that reads hostile input: what a pack or a store declares is
checked against `atpack.Limits` before anything is written or fetched, blobs are held one batch
at a time, and a pull never leaves a pack whose digest is not the one asked for.

Each test builds its attack (a pack that declares too much, a store whose record or blobs lie),
then checks the refusal is an `AtpackError` of one line, nothing was written (listings of the
folders before and after), and, where memory is the target, that Python's peak allocation
(tracemalloc) stayed far below what the attack asked for.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard

import atpack
from atpack.artifacts import MegacacheAotAutograd
from atpack.digest import digest_bytes
from atpack.merging import merge
from atpack.pack import DEFAULT_GROUP_SIZE, DEFAULT_LIMITS
from atpack.populate import populate
from atpack.store import PackRecord, Store, _record_digest
from atpack.testing.faults import listing
from atpack.testing.packs import INDUCTOR_ENV, TRITON_ENV, pack_of, peak_allocation_while, triton_kernel

MiB = 1 << 20


def one_line(error: pytest.ExceptionInfo[atpack.AtpackError]) -> str:
    assert isinstance(error.value, atpack.AtpackError) and "\n" not in str(error.value), error.value
    return str(error.value)


def write_pack(
    path: Path, *artifacts: atpack.Artifact, blobs: tuple[bytes, ...] = (), group_size: int = DEFAULT_GROUP_SIZE
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pack_of(*artifacts, blobs=blobs, group_size=group_size))
    return path


def kernel_pack(path: Path, n: int, *, files: int, blob: bytes) -> Path:
    """A pack of Triton kernels whose `files` files (besides each kernel's small metadata) all
    hold the same blob: as many kernels as it takes, each with its files' names Triton's
    compiler writes."""
    suffixes = [".cubin", ".ptx", ".ttir", ".ttgir", ".llir", ".source", ".hsaco", ".amdgcn", ".spv", ".zebin"]
    kernels, blobs = [], [blob]
    for k in range(-(-files // len(suffixes))):
        number = n * 1000 + k
        metadata = b'{"name": "kernel_%d"}' % number
        names = [f"kernel_{number}{suffix}" for suffix in suffixes[: files - k * len(suffixes)]]
        kernels.append(
            triton_kernel(TRITON_ENV.digest, number, [(f"kernel_{number}.json", metadata)] + [(x, blob) for x in names])
        )
        blobs.append(metadata)
    return write_pack(path, *kernels, blobs=tuple(blobs))


@dataclasses.dataclass
class Caches:
    root: Path

    def populate(self, url: Path, **options: Any) -> atpack.PopulateReport:
        return populate(
            url,
            inductor_dir=str(self.root / "inductor"),
            triton_dir=str(self.root / "triton"),
            ignore_environment=True,
            **options,
        )

    def refuses(self, url: Path, match: str, **options: Any) -> str:
        """Populating `url` raises a one-line `LimitError` matching `match`, writing nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        before = listing(self.root)
        with pytest.raises(atpack.LimitError, match=match) as error:
            self.populate(url, **options)
        assert listing(self.root) == before, "populate wrote something"
        return one_line(error)


@pytest.fixture
def caches(tmp_path: Path) -> Caches:
    return Caches(tmp_path / "caches")


# =========================================================================== populate


def test_one_blob_named_by_many_files_counts_once_per_file_against_the_byte_limit(
    caches: Caches, tmp_path: Path
) -> None:
    pack = kernel_pack(tmp_path / "p.atpack", 0, files=16, blob=random.Random(0).randbytes(MiB))  # 1 MiB stored
    limits = dataclasses.replace(DEFAULT_LIMITS, max_write_bytes=8 * MiB)
    message = caches.refuses(pack, "bytes of files to write, over the limit of 8,388,608", limits=limits)
    assert message.startswith(str(pack))
    assert (
        caches.populate(pack).count("written") == 2
    )  # within the default limits, the same pack (2 kernels) is written


def test_a_pack_declaring_more_files_than_the_limit_is_refused_before_anything_is_written(
    caches: Caches, tmp_path: Path
) -> None:
    pack = kernel_pack(tmp_path / "p.atpack", 0, files=10, blob=b"x")
    limits = dataclasses.replace(DEFAULT_LIMITS, max_write_files=10)  # 10 files, the metadata and the group file
    caches.refuses(pack, "12 files to write, over the limit of 10", limits=limits)


def model_folder(root: Path, packs: int, blob: bytes) -> Path:
    for n in range(packs):
        kernel_pack(root / "atpack" / f"rank{n}.atpack", n, files=3, blob=blob)
    return root


def test_a_model_folder_counts_all_its_packs_together(caches: Caches, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model", 3, random.Random(1).randbytes(2 * MiB))  # 6 MiB to write per pack
    limits = dataclasses.replace(DEFAULT_LIMITS, max_write_bytes=16 * MiB)
    for pack in sorted((folder / "atpack").iterdir()):
        assert caches.populate(pack, limits=limits, dry_run=True).ok  # each alone is within the limit
    message = caches.refuses(folder, "bytes of files to write, over the limit of 16,777,216", limits=limits)
    assert message.startswith(str(folder))  # refused before the first pack was written


def test_a_model_folder_with_more_packs_than_the_limit_is_refused_before_any_is_read(
    caches: Caches, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    (folder / "atpack").mkdir(parents=True)
    for n in range(3):
        (folder / "atpack" / f"{n}.atpack").write_bytes(b"not even a pack")
    limits = dataclasses.replace(DEFAULT_LIMITS, max_packs=2)
    caches.refuses(folder, "3 packs, over the limit of 2", limits=limits)


def aot_key(n: int) -> str:
    """An AOTAutograd cache key as torch makes it: "a" and torch's `sha256_hash` (51 base32 characters)."""
    return "a" + base64.b32encode(hashlib.sha256(b"%d" % n).digest())[:51].decode().lower()


def test_megacache_replay_holds_one_batch_of_contents_not_every_entry(caches: Caches, tmp_path: Path) -> None:
    rng = random.Random(2)
    contents = [rng.randbytes(4 * MiB) for _ in range(8)]  # 32 MiB of pickles, 4 MiB each
    entries = [
        MegacacheAotAutograd(env=INDUCTOR_ENV.digest, entry_key=aot_key(i), seq=i, content=digest_bytes(c), size=len(c))
        for i, c in enumerate(contents)
    ]
    # a frame per entry: what this holds to is the batch (a frame is read whole)
    pack = write_pack(tmp_path / "p.atpack", *entries, blobs=tuple(contents), group_size=4 * MiB)
    limits = dataclasses.replace(DEFAULT_LIMITS, batch_bytes=4 * MiB)
    reports: list[atpack.PopulateReport] = []
    peak = peak_allocation_while(lambda: reports.append(caches.populate(pack, trust_pickles=True, limits=limits)))
    assert reports[0].count("written") == 8
    assert peak < 20 * MiB, f"{peak:,} bytes at once for 4 MiB entries"


def test_merging_packs_copies_their_blobs_pack_by_pack(tmp_path: Path) -> None:
    rng = random.Random(3)
    packs = [kernel_pack(tmp_path / f"{n}.atpack", n, files=1, blob=rng.randbytes(8 * MiB)) for n in range(8)]
    peak = peak_allocation_while(lambda: merge(packs, tmp_path / "merged.atpack"))
    assert len(atpack.open(tmp_path / "merged.atpack").artifacts) == 8
    assert peak < 48 * MiB, f"{peak:,} bytes at once for 8 packs of 8 MiB"


# =========================================================================== pull from a hostile store


@dataclasses.dataclass
class Stores:
    """A store a pack was pushed to, a node's local store, and where pulls write."""

    root: Path
    remote: Store
    local: Store
    digest: str
    blob: str  # the digest of the pack's one blob

    @property
    def out(self) -> Path:
        return self.root / "out" / "pulled.atpack"

    def blob_path(self, digest: str | None = None) -> Path:
        hex_ = (digest or self.blob).split(":", 1)[1]
        return self.root / "remote" / "blobs" / hex_[:2] / hex_

    def put_record(self, record: PackRecord) -> str:
        """Store `record` under its digest, as a hostile store would; returns the digest."""
        digest = _record_digest(record)
        frame = zstandard.ZstdCompressor(write_content_size=True).compress(msgspec.json.encode(record))
        (self.root / "remote" / "packs" / f"{digest.split(':', 1)[1]}.json.zst").write_bytes(frame)
        return digest

    def refuses(self, ref: str, error: type[atpack.AtpackError], match: str) -> str:
        """Pulling `ref` raises `error` (one line, matching `match`), leaves what was at the
        output as it was, and adds nothing to the local store."""
        self.out.parent.mkdir(exist_ok=True)
        self.out.write_bytes(b"the pack pulled yesterday")
        before = listing(self.root / "out"), listing(self.root / "local")
        with pytest.raises(error, match=match) as raised:
            self.remote.pull(ref, self.out, local=self.local)
        assert (listing(self.root / "out"), listing(self.root / "local")) == before
        return one_line(raised)


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    blob = random.Random(4).randbytes(MiB)
    pack = kernel_pack(tmp_path / "p.atpack", 0, files=1, blob=blob)
    remote = Store(tmp_path / "remote")
    pushed = remote.push(pack)
    return Stores(tmp_path, remote, Store(tmp_path / "local"), pushed.digest, digest_bytes(blob))


def test_the_pushed_pack_pulls_cleanly(stores: Stores) -> None:
    # the premise of the tests below: without the attack, the same store pulls
    stores.remote.pull(stores.digest, stores.out, local=stores.local)
    assert atpack.open(stores.out).digest == stores.digest


def test_a_record_declaring_a_blob_over_the_limit_is_refused_before_anything_is_fetched(stores: Stores) -> None:
    record = stores.remote.record(stores.digest)
    lying = msgspec.structs.replace(record, blobs=((stores.blob, 5 << 30),))  # the digest covers artifacts only
    assert stores.put_record(lying) == stores.digest
    stores.refuses(stores.digest, atpack.LimitError, "declares 5,368,709,120 bytes, over the limit of 4,294,967,296")


@pytest.mark.parametrize(
    ("blobs", "match"),
    [
        ((("sha256:../../../outside/x", 1),), "Expected `str` matching"),
        ((("sha256:" + "f" * 64, 1), ("sha256:" + "f" * 64, 1)), "blobs not sorted, or one listed twice"),
        ((("sha256:" + "f" * 64, -1),), "Expected `int` >= 0"),
    ],
    ids=["a path for a digest", "a blob listed twice", "a negative size"],
)
def test_a_record_whose_blob_list_is_malformed_is_refused(
    stores: Stores, blobs: tuple[tuple[str, int], ...], match: str
) -> None:
    record = stores.remote.record(stores.digest)
    raw = msgspec.json.encode(record).replace(msgspec.json.encode(record.blobs), msgspec.json.encode(blobs))
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    (stores.root / "remote" / "packs" / f"{stores.digest.split(':', 1)[1]}.json.zst").write_bytes(frame)
    stores.refuses(stores.digest, atpack.IntegrityError, match)


def zstd_frame_claiming(size: int, blocks: int, block_size: int = 128 << 10) -> bytes:
    """A zstd frame whose header declares `size` bytes and whose RLE blocks expand to
    `blocks * block_size` bytes of zeros: a few bytes on the wire for each 128 KiB."""
    out = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", size)  # 8-byte content size, single segment
    for i in range(blocks):
        header = (1 if i == blocks - 1 else 0) | (1 << 1) | (block_size << 3)  # last?, RLE, size
        out += header.to_bytes(3, "little") + b"\x00"
    return out


def test_a_record_frame_declaring_a_terabyte_is_refused_before_allocating(stores: Stores) -> None:
    path = stores.root / "remote" / "packs" / f"{stores.digest.split(':', 1)[1]}.json.zst"
    path.write_bytes(zstd_frame_claiming(1 << 40, 1))
    peak = peak_allocation_while(
        lambda: stores.refuses(stores.digest, atpack.LimitError, "declares 1,099,511,627,776 bytes, over the limit")
    )
    assert peak < 4 * MiB


def test_a_record_that_expands_over_32x_is_refused_before_it_is_decompressed(stores: Stores) -> None:
    """A record is decoded as an index is, at many bytes of memory a byte: an independent review's
    45 KB store declaring a 198 MiB record took 4.8 GiB to pull. The index's rule holds for it."""
    path = stores.root / "remote" / "packs" / f"{stores.digest.split(':', 1)[1]}.json.zst"
    path.write_bytes(zstandard.ZstdCompressor(write_content_size=True).compress(b" " * (8 * MiB)))
    peak = peak_allocation_while(lambda: stores.refuses(stores.digest, atpack.LimitError, "over 32x"))
    assert peak < 4 * MiB


@pytest.mark.parametrize("what", ["tag", "record", "blob"])
def test_a_fifo_in_a_local_store_is_refused_without_waiting(stores: Stores, what: str) -> None:
    """A local store's call has no deadline, and opening a FIFO waits for a writer: every file a
    store read is a regular file, checked before it is opened."""
    stores.remote.tag("latest", stores.digest)
    hex_ = stores.digest.split(":", 1)[1]
    path = {
        "tag": stores.root / "remote" / "tags" / "latest",
        "record": stores.root / "remote" / "packs" / f"{hex_}.json.zst",
        "blob": stores.blob_path(),
    }[what]
    path.unlink()
    os.mkfifo(path)
    started = time.monotonic()
    message = stores.refuses("latest", atpack.StorageError, "not a regular file")
    assert time.monotonic() - started < 10 and "\n" not in message


def streamed_zeros(size: int) -> bytes:
    """`size` zero bytes as a zstd frame that does not declare its size (streamed), made without
    holding them."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(write_content_size=False).stream_writer(out, closefd=False) as writer:
        chunk = bytes(MiB)
        for _ in range(size // MiB):
            writer.write(chunk)
    return out.getvalue()


ATTACKS: dict[str, tuple[Callable[[], bytes], type[atpack.AtpackError], str]] = {
    "stored 16x larger than declared": (
        lambda: zstandard.ZstdCompressor().compress(random.Random(5).randbytes(16 * MiB)),
        atpack.LimitError,
        "stored in more bytes than any zstd frame of the 1,048,576 bytes its record declares",
    ),
    "a bomb not declaring its size": (
        lambda: streamed_zeros(256 * MiB),
        atpack.FormatError,
        "zstd frame declares -1 bytes, the table says 1048576",
    ),
    "a bomb declaring the record's size": (
        lambda: zstd_frame_claiming(MiB, 2048),  # 256 MiB of zeros behind a 1 MiB header
        atpack.IntegrityError,
        "blob sha256:",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_blob_that_is_not_the_size_its_record_declares_is_refused_holding_little(stores: Stores, attack: str) -> None:
    make, error, match = ATTACKS[attack]
    stores.blob_path().write_bytes(make())
    peak = peak_allocation_while(lambda: stores.refuses(stores.digest, error, match))
    assert peak < 8 * MiB, f"{peak:,} bytes at once for a 1 MiB blob"


def test_a_pack_whose_digest_is_not_the_one_asked_for_is_never_published(stores: Stores) -> None:
    stores.remote.pull(stores.digest, stores.out, local=stores.local)  # the node has the (genuine) blob
    record = stores.remote.record(stores.digest)
    # the same artifact, not in canonical form: the record's digest is over its bytes as they are,
    # the assembled pack's over the canonical bytes
    loose = bytes(record.artifacts[0]).replace(b'{"', b'{ "', 1)
    digest = stores.put_record(msgspec.structs.replace(record, artifacts=(msgspec.Raw(loose),)))
    assert digest != stores.digest
    message = stores.refuses(digest, atpack.IntegrityError, f"is {stores.digest}: not published")
    assert digest in message


@pytest.mark.slow
def test_a_record_listing_a_million_blobs_is_refused_before_fetching_and_holds_no_gigabytes(
    stores: Stores,
) -> None:
    record = stores.remote.record(stores.digest)
    blobs = sorted(("sha256:" + hashlib.sha256(b"%d" % i).hexdigest(), MiB) for i in range(10**6))  # a terabyte
    assert stores.put_record(msgspec.structs.replace(record, blobs=tuple(blobs))) == stores.digest
    del blobs
    peak = peak_allocation_while(
        lambda: stores.refuses(stores.digest, atpack.LimitError, "1,048,576,000,000 bytes of blobs, over the limit")
    )
    assert peak < 512 * MiB, f"{peak:,} bytes at once"
    assert not (stores.root / "local" / "blobs").exists()


def test_a_blob_stored_larger_than_declared_on_s3_is_read_no_further_than_its_bound(s3: Any, tmp_path: Path) -> None:
    blob = random.Random(6).randbytes(MiB)
    pack = kernel_pack(tmp_path / "p.atpack", 0, files=1, blob=blob)
    remote = Store(s3.url("store"), storage_options=s3.storage_options)
    digest = remote.push(pack).digest
    hex_ = digest_bytes(blob).split(":", 1)[1]
    huge = zstandard.ZstdCompressor().compress(random.Random(7).randbytes(32 * MiB))
    s3.filesystem().pipe_file(f"{s3.name}/store/blobs/{hex_[:2]}/{hex_}", huge)
    s3.reset_counters()
    with pytest.raises(atpack.LimitError, match="stored in more bytes than any zstd frame") as error:
        remote.pull(digest, tmp_path / "out.atpack", local=Store(tmp_path / "local"))
    one_line(error)
    assert s3.bytes_sent < 2 * MiB, f"the server sent {s3.bytes_sent:,} bytes of a {len(huge):,}-byte object"
    assert not (tmp_path / "out.atpack").exists()
