"""The pack container, format 1: what a writer produces and what a reader accepts.

Layout: header (16 bytes) | zstd frames holding blobs | zstd frame of index JSON | footer (72 bytes).
Each test states one behaviour. Hostile packs are made from valid ones with the surgery tools
in `atpack.testing.packs`, which change exactly one thing and fix up every digest and offset
around it.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies as st
import msgspec
import pytest
import zstandard

import atpack
from atpack.artifacts import KERNEL_SUFFIXES
from atpack.digest import canonical, digest_bytes
from atpack.pack import TAIL_READ, PackWriter
from atpack.testing.packs import (
    FOOTER,
    HEADER,
    INDUCTOR_ENV,
    MAGIC,
    TRITON_ENV,
    UNUSED_ENV,
    Content,
    apply,
    artifact_bytes,
    assemble,
    best_config,
    compress_frame,
    frame_entry,
    frames_region,
    hex64,
    open_bytes,
    pack_bytes,
    peak_allocation_while,
    read_everything,
    read_footer,
    read_index,
    rewrite_index,
    sample_content,
    sort_artifacts,
    triton_kernel,
    with_footer,
    with_header,
    with_version,
)

GROUP = 256  # a small group size keeps packs with "large" blobs small


def write(path: Path, content: Content, **options: Any) -> atpack.PackInfo:
    with atpack.create(path, **options) as writer:
        apply(writer, content.operations())
    assert writer.info is not None
    return writer.info


def content_blobs(content: Content) -> dict[str, bytes]:
    return {digest_bytes(data): data for data, _ in content.blobs}


@pytest.fixture
def content() -> Content:
    return sample_content(group_size=GROUP)


@pytest.fixture
def packed(tmp_path: Path, content: Content) -> tuple[Path, atpack.PackInfo]:
    path = tmp_path / "sample.atpack"
    return path, write(path, content, group_size=GROUP)


@pytest.fixture
def pack_data(content: Content) -> bytes:
    return pack_bytes(content, group_size=GROUP)


def put(tmp_path: Path, data: bytes, name: str = "crafted.atpack") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# =========================================================================== round trip


def test_round_trip_keeps_every_artifact(packed: tuple[Path, atpack.PackInfo], content: Content) -> None:
    with atpack.open(packed[0]) as pack:
        assert sorted(pack.artifacts, key=atpack.artifacts.artifact_digest) == sorted(
            content.artifacts, key=atpack.artifacts.artifact_digest
        )
        assert {type(a) for a in pack.artifacts} == {
            atpack.InductorBestConfig,
            atpack.InductorKernelPerf,
            atpack.InductorGemmTimings,
            atpack.TritonAutotune,
            atpack.TritonKernel,
        }


def test_artifacts_are_listed_in_digest_order(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack:
        digests = [atpack.artifacts.artifact_digest(a) for a in pack.artifacts]
    assert digests == sorted(digests)


def test_round_trip_keeps_the_environments_artifacts_use(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack:
        assert pack.manifest.environments == {INDUCTOR_ENV.digest: INDUCTOR_ENV, TRITON_ENV.digest: TRITON_ENV}


def test_environments_no_artifact_uses_are_left_out(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack:
        assert UNUSED_ENV.digest not in pack.manifest.environments


def test_round_trip_keeps_annotations_and_which_are_digested(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack:
        assert pack.manifest.annotations == {"org.example.model": "llama", "org.example.run": "42"}
        assert pack.manifest.digested_annotations == ("org.example.run",)


def test_annotating_again_without_digested_removes_the_key_from_the_digest(tmp_path: Path) -> None:
    with atpack.create(tmp_path / "a.atpack") as writer:
        writer.annotate("org.example.run", "1", digested=True)
        writer.annotate("org.example.run", "2")
    with atpack.open(tmp_path / "a.atpack") as pack:
        assert pack.manifest.annotations == {"org.example.run": "2"}
        assert pack.manifest.digested_annotations == ()


def test_annotation_keys_must_be_reverse_dns() -> None:
    writer = PackWriter(io.BytesIO())
    with pytest.raises(ValueError, match="reverse-DNS"):
        writer.annotate("model", "llama")
    writer.abort()


def test_read_blob_returns_small_grouped_blobs(packed: tuple[Path, atpack.PackInfo], content: Content) -> None:
    small = {d: b for d, b in content_blobs(content).items() if len(b) <= GROUP}
    assert len(small) >= 2
    with atpack.open(packed[0]) as pack:
        for digest, data in small.items():
            assert pack.read_blob(digest) == data


def test_read_blob_returns_blobs_larger_than_the_group_size(
    packed: tuple[Path, atpack.PackInfo], content: Content
) -> None:
    big = {d: b for d, b in content_blobs(content).items() if len(b) > GROUP}
    assert big
    with atpack.open(packed[0]) as pack:
        for digest, data in big.items():
            assert pack.read_blob(digest) == data


def test_blobs_larger_than_the_group_size_get_a_frame_each(pack_data: bytes) -> None:
    index = read_index(pack_data)
    for digest, frame, offset, size in index["blobs"]:
        if size > GROUP:
            assert offset == 0
            assert index["frames"][frame][2] == size
            assert [b for b in index["blobs"] if b[1] == frame] == [[digest, frame, offset, size]]


def test_small_blobs_share_frames_no_larger_than_the_group_size(tmp_path: Path) -> None:
    blobs = [bytes([i]) * 50 for i in range(10)]  # 500 bytes of blobs, groups of at most 256
    with atpack.create(tmp_path / "p.atpack", group_size=GROUP) as writer:
        for blob in blobs:
            writer.add_blob(blob)
    index = read_index((tmp_path / "p.atpack").read_bytes())
    assert [f[2] for f in index["frames"]] == [250, 250]
    assert writer.info is not None and writer.info.frames == 2 and writer.info.blobs == 10


def test_blob_exactly_the_group_size_is_grouped(tmp_path: Path) -> None:
    with atpack.create(tmp_path / "p.atpack", group_size=GROUP) as writer:
        writer.add_blob(b"a" * GROUP)
        writer.add_blob(b"b" * 10)
    index = read_index((tmp_path / "p.atpack").read_bytes())
    assert [f[2] for f in index["frames"]] == [GROUP, 10]


def test_read_blobs_yields_every_requested_blob_once(packed: tuple[Path, atpack.PackInfo], content: Content) -> None:
    blobs = content_blobs(content)
    with atpack.open(packed[0]) as pack:
        got = list(pack.read_blobs(list(blobs) + list(blobs)))
    assert sorted(d for d, _ in got) == sorted(blobs)
    assert dict(got) == blobs


def test_read_blobs_in_batches_of_one_byte_still_yields_every_blob(
    packed: tuple[Path, atpack.PackInfo], content: Content
) -> None:
    blobs = content_blobs(content)
    with atpack.open(packed[0]) as pack:
        assert dict(pack.read_blobs(blobs, batch_bytes=1)) == blobs


def test_read_blobs_of_nothing_yields_nothing(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack:
        assert list(pack.read_blobs([])) == []


def test_has_blob_and_blob_size_describe_stored_blobs(packed: tuple[Path, atpack.PackInfo], content: Content) -> None:
    with atpack.open(packed[0]) as pack:
        for digest, data in content_blobs(content).items():
            assert pack.has_blob(digest)
            assert pack.blob_size(digest) == len(data)
        assert not pack.has_blob(digest_bytes(b"never stored"))


def test_reading_a_blob_the_pack_does_not_hold_raises_key_error(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack, pytest.raises(KeyError, match="no blob"):
        pack.read_blob(digest_bytes(b"never stored"))


def test_verify_accepts_a_valid_pack(packed: tuple[Path, atpack.PackInfo]) -> None:
    with atpack.open(packed[0]) as pack:
        pack.verify()


def test_pack_info_describes_what_was_written(packed: tuple[Path, atpack.PackInfo], content: Content) -> None:
    path, info = packed
    assert info.size == path.stat().st_size
    assert info.artifacts == len(content.artifacts)
    assert info.blobs == len(content_blobs(content))
    assert info.frames == len(read_index(path.read_bytes())["frames"])
    assert info.blob_bytes == sum(len(b) for b in content_blobs(content).values())


def test_pack_digest_equals_the_writers_digest(packed: tuple[Path, atpack.PackInfo]) -> None:
    path, info = packed
    with atpack.open(path) as pack:
        assert pack.digest == info.digest


def test_digest_ignores_annotations_that_are_not_digested(content: Content) -> None:
    other = Content(
        content.environments,
        content.blobs,
        content.artifacts,
        [*content.annotations, ("org.example.note", "anything", False)],
    )
    a, b = pack_bytes(content), pack_bytes(other)
    assert a != b
    assert open_bytes(a).digest == open_bytes(b).digest


def test_digest_changes_with_the_value_of_a_digested_annotation(content: Content) -> None:
    other = Content(
        content.environments,
        content.blobs,
        content.artifacts,
        [("org.example.model", "llama", False), ("org.example.run", "43", True)],
    )
    assert open_bytes(pack_bytes(content)).digest != open_bytes(pack_bytes(other)).digest


def test_digest_changes_when_an_annotation_becomes_digested(content: Content) -> None:
    other = Content(
        content.environments,
        content.blobs,
        content.artifacts,
        [("org.example.model", "llama", True), ("org.example.run", "42", True)],
    )
    assert open_bytes(pack_bytes(content)).digest != open_bytes(pack_bytes(other)).digest


def test_digest_changes_with_the_artifacts(content: Content) -> None:
    other = Content(content.environments, content.blobs, content.artifacts[1:], content.annotations)
    assert open_bytes(pack_bytes(content)).digest != open_bytes(pack_bytes(other)).digest


def test_digest_does_not_depend_on_compression_settings(content: Content) -> None:
    a = pack_bytes(content, level=1, group_size=GROUP)
    b = pack_bytes(content, level=19, group_size=10_000)
    assert a != b
    assert open_bytes(a).digest == open_bytes(b).digest


def test_a_blob_added_twice_is_stored_once(tmp_path: Path) -> None:
    with atpack.create(tmp_path / "p.atpack") as writer:
        first = writer.add_blob(b"same")
        second = writer.add_blob(b"same", hint="other")
    assert first == second == digest_bytes(b"same")
    assert writer.info is not None and writer.info.blobs == 1


def test_an_artifact_added_twice_is_stored_once(tmp_path: Path) -> None:
    artifact = best_config(INDUCTOR_ENV.digest, 0)
    with atpack.create(tmp_path / "p.atpack") as writer:
        writer.add_environment(INDUCTOR_ENV)
        assert writer.add(artifact) == writer.add(artifact)
    with atpack.open(tmp_path / "p.atpack") as pack:
        assert pack.artifacts == (artifact,)


def test_writer_refuses_two_answers_to_one_question() -> None:
    writer = PackWriter(io.BytesIO())
    writer.add(best_config(INDUCTOR_ENV.digest, 0, num_warps=4))
    with pytest.raises(atpack.FormatError, match="two different"):
        writer.add(best_config(INDUCTOR_ENV.digest, 0, num_warps=8))
    writer.abort()


def test_an_empty_pack_round_trips(tmp_path: Path) -> None:
    with atpack.create(tmp_path / "empty.atpack"):
        pass
    with atpack.open(tmp_path / "empty.atpack") as pack:
        pack.verify()
        assert pack.artifacts == ()
        assert pack.manifest.environments == {}


def test_an_empty_blob_round_trips(tmp_path: Path) -> None:
    with atpack.create(tmp_path / "p.atpack") as writer:
        digest = writer.add_blob(b"")
    with atpack.open(tmp_path / "p.atpack") as pack:
        pack.verify()
        assert pack.read_blob(digest) == b""


def test_an_empty_blob_grouped_after_a_differently_hinted_blob_round_trips(tmp_path: Path) -> None:
    # The empty blob (digest e3b0…) sorts first in its frame by hint, and a blob with a
    # smaller digest but a later hint follows it at the same offset.
    small = next(b for b in (b"x%d" % i for i in range(100)) if digest_bytes(b) < digest_bytes(b""))
    with atpack.create(tmp_path / "p.atpack", group_size=GROUP) as writer:
        writer.add_blob(b"", hint="a")
        writer.add_blob(small, hint="b")
    with atpack.open(tmp_path / "p.atpack") as pack:
        pack.verify()
        assert pack.read_blob(digest_bytes(b"")) == b""
        assert pack.read_blob(digest_bytes(small)) == small


def test_pack_writer_on_a_stream_writes_the_same_bytes_as_create(
    packed: tuple[Path, atpack.PackInfo], pack_data: bytes
) -> None:
    assert packed[0].read_bytes() == pack_data


def test_writer_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="level"):
        PackWriter(io.BytesIO(), level=0)
    with pytest.raises(ValueError, match="group_size"):
        PackWriter(io.BytesIO(), group_size=0)


# =========================================================================== threads


_READ_IN_THREADS = """
import sys, threading
import atpack

path, digests = sys.argv[1], sys.argv[2:]
errors = []

def work():
    try:
        for _ in range(10):
            with atpack.open(path) as pack:  # one Pack per thread: nothing is shared on purpose
                for digest in digests:
                    pack.read_blob(digest)
    except Exception as e:
        errors.append(repr(e))

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors or "ok")
"""


def test_separate_packs_can_be_read_from_several_threads_at_once(tmp_path: Path) -> None:
    # in a child process, because a data race in a shared zstd context can crash the interpreter
    rng = random.Random(0)
    blobs = [(rng.randbytes(2048) * 512, "") for _ in range(4)]  # 1 MiB each, a frame each
    path = put(tmp_path, pack_bytes(Content(blobs=blobs), group_size=1 << 16, level=1))
    digests = [digest_bytes(b) for b, _ in blobs]
    child = subprocess.run(
        [sys.executable, "-c", _READ_IN_THREADS, str(path), *digests], capture_output=True, text=True, timeout=120
    )
    assert (child.returncode, child.stdout.strip()) == (0, "ok"), child.stderr[-2000:]


# =========================================================================== determinism


@pytest.mark.parametrize("seed", range(5))
def test_same_content_in_any_order_gives_identical_bytes(content: Content, seed: int) -> None:
    # the same blob twice, with two hints: the order the hints come in must not matter either
    content.blobs.append((content.blobs[0][0], "zzz"))
    assert pack_bytes(content, shuffle_seed=seed, group_size=GROUP) == pack_bytes(content, group_size=GROUP)


def test_same_content_written_to_two_files_gives_identical_files(tmp_path: Path, content: Content) -> None:
    write(tmp_path / "a.atpack", content, group_size=GROUP)
    content.artifacts.reverse()
    content.blobs.reverse()
    content.environments.reverse()
    write(tmp_path / "b.atpack", content, group_size=GROUP)
    assert (tmp_path / "a.atpack").read_bytes() == (tmp_path / "b.atpack").read_bytes()


# =========================================================================== corruption


@pytest.fixture(scope="module")
def sweep_pack() -> bytes:
    """A pack of a few KB with every artifact kind, small blobs in several shared frames and
    one blob above the group size in a frame of its own."""
    data = pack_bytes(sample_content(group_size=64, small_blobs=10), group_size=64)
    index = read_index(data)
    assert 2048 < len(data) < 4096
    assert len(index["frames"]) >= 3
    assert any(size > 64 for *_, size in index["blobs"])
    return data


def outcome(path: Path) -> str | None:
    """None if opening, verifying and reading every referenced blob raise an AtpackError;
    otherwise what happened instead."""
    try:
        with atpack.open(path) as pack:
            read_everything(pack)
    except atpack.AtpackError:
        return None
    except Exception as e:  # anything else is a bug
        return f"{type(e).__name__}: {e}"
    return "accepted"


def test_the_sweep_pack_is_valid(tmp_path: Path, sweep_pack: bytes) -> None:
    with atpack.open(put(tmp_path, sweep_pack)) as pack:
        assert len(read_everything(pack)) == len(read_index(sweep_pack)["blobs"])


@pytest.mark.parametrize("mask", [0xFF, 0x01], ids=["xor-ff", "xor-01"])
def test_every_single_byte_flip_is_detected(tmp_path: Path, sweep_pack: bytes, mask: int) -> None:
    path = tmp_path / "flipped.atpack"
    missed = {}
    for offset in range(len(sweep_pack)):
        data = bytearray(sweep_pack)
        data[offset] ^= mask
        path.write_bytes(data)
        result = outcome(path)
        if result is not None:
            missed[offset] = result
    assert missed == {}


def test_every_truncation_is_detected(tmp_path: Path, sweep_pack: bytes) -> None:
    path = tmp_path / "truncated.atpack"
    missed = {}
    for length in range(len(sweep_pack)):
        path.write_bytes(sweep_pack[:length])
        result = outcome(path)
        if result is not None:
            missed[length] = result
    assert missed == {}


def test_bytes_after_the_footer_are_refused(tmp_path: Path, sweep_pack: bytes) -> None:
    with pytest.raises(atpack.FormatError, match="footer magic"):
        atpack.open(put(tmp_path, sweep_pack + b"\0"))


def test_a_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(atpack.StorageError):
        atpack.open(tmp_path / "nothing.atpack")


@pytest.fixture(scope="module")
def large_pack() -> bytes:
    """A pack longer than what a reader fetches from the tail when it opens it."""
    data = pack_bytes(Content(blobs=[(random.Random(7).randbytes(TAIL_READ + 1000), "")]))
    assert len(data) > TAIL_READ
    return data


def test_header_of_a_pack_longer_than_the_tail_read_is_checked_by_verify(tmp_path: Path, large_pack: bytes) -> None:
    with (
        atpack.open(put(tmp_path, with_header(large_pack, magic=b"NOTAPACK"))) as pack,
        pytest.raises(atpack.FormatError, match="header magic"),
    ):
        pack.verify()


def test_header_of_a_pack_within_the_tail_read_is_checked_on_open(tmp_path: Path, pack_data: bytes) -> None:
    with pytest.raises(atpack.FormatError, match="header magic"):
        atpack.open(put(tmp_path, with_header(pack_data, magic=b"NOTAPACK")))


def test_a_corrupt_frame_is_an_integrity_error(tmp_path: Path, pack_data: bytes) -> None:
    data = bytearray(pack_data)
    data[HEADER.size + 5] ^= 0xFF
    with atpack.open(put(tmp_path, bytes(data))) as pack, pytest.raises(atpack.IntegrityError, match="frame 0"):
        pack.verify()


def test_a_corrupt_index_is_an_integrity_error(tmp_path: Path, pack_data: bytes) -> None:
    data = bytearray(pack_data)
    data[read_footer(pack_data).index_offset + 5] ^= 0xFF
    with pytest.raises(atpack.IntegrityError, match="index"):
        atpack.open(put(tmp_path, bytes(data)))


# =========================================================================== hostile packs


def big_blob(index: dict[str, Any]) -> tuple[int, list[Any]]:
    """The position in the blob table and the entry of the (only) blob above the group size."""
    (found,) = [(i, b) for i, b in enumerate(index["blobs"]) if b[3] > GROUP]
    return found


def expect_refused(path: Path, error: type[atpack.AtpackError], match: str, **open_options: Any) -> None:
    with pytest.raises(error, match=match):
        atpack.open(path, **open_options)


def test_surgery_that_changes_nothing_gives_back_the_same_bytes(pack_data: bytes) -> None:
    # the premise of every test below: rewrite_index only introduces the defect a test asks for
    assert rewrite_index(pack_data, lambda index: None) == pack_data


def test_frame_declaring_2_40_bytes_is_refused_before_any_large_allocation(tmp_path: Path, pack_data: bytes) -> None:
    def declare(index: dict[str, Any]) -> None:
        i, blob = big_blob(index)
        index["frames"][blob[1]][2] = 1 << 40
        index["blobs"][i][3] = 1 << 40  # the table stays self-consistent: only the size is hostile

    path = put(tmp_path, rewrite_index(pack_data, declare))
    peak = peak_allocation_while(lambda: expect_refused(path, atpack.LimitError, r"declares 1099511627776 bytes"))
    assert peak < 4 << 20


def test_blob_declaring_2_40_bytes_is_refused_before_any_large_allocation(tmp_path: Path, pack_data: bytes) -> None:
    def declare(index: dict[str, Any]) -> None:
        index["blobs"][0][3] = 1 << 40

    path = put(tmp_path, rewrite_index(pack_data, declare))
    peak = peak_allocation_while(lambda: expect_refused(path, atpack.LimitError, "runs past the end of frame"))
    assert peak < 4 << 20


def test_frame_whose_zstd_header_disagrees_with_the_table_is_refused_on_read(tmp_path: Path, pack_data: bytes) -> None:
    def declare(index: dict[str, Any]) -> None:
        i, blob = big_blob(index)
        index["frames"][blob[1]][2] += 1
        index["blobs"][i][3] += 1  # the table stays self-consistent: only the zstd header disagrees

    digest = big_blob(read_index(pack_data))[1][0]
    with (
        atpack.open(put(tmp_path, rewrite_index(pack_data, declare))) as pack,
        pytest.raises(atpack.FormatError, match="zstd frame declares"),
    ):
        pack.read_blob(digest)


def test_index_declaring_2_40_bytes_is_refused_from_the_footer_before_any_large_allocation(
    tmp_path: Path, pack_data: bytes
) -> None:
    path = put(tmp_path, with_footer(pack_data, index_size=1 << 40))
    peak = peak_allocation_while(lambda: expect_refused(path, atpack.LimitError, "exceeds the limit"))
    assert peak < 4 << 20


def zstd_header_claiming(size: int) -> bytes:
    """A zstd frame that claims `size` bytes of content but holds one 128-byte RLE block."""
    descriptor = 0xE0  # 8-byte content size, single segment, no checksum
    block = 1 | (1 << 1) | (128 << 3)  # last block, RLE, 128 bytes
    return b"\x28\xb5\x2f\xfd" + bytes([descriptor]) + struct.pack("<Q", size) + block.to_bytes(3, "little") + b"\0"


@pytest.mark.parametrize("where", ["frame", "index"])
def test_a_few_bytes_claiming_hundreds_of_mib_never_make_the_reader_allocate_them(tmp_path: Path, where: str) -> None:
    claim = 256 << 20  # well within the default limits
    lie = zstd_header_claiming(claim)
    assert zstandard.frame_content_size(lie) == claim
    digest = "sha256:" + "0" * 64
    if where == "frame":
        index = {"frames": [frame_entry(HEADER.size, lie, claim)], "blobs": [[digest, 0, 0, claim]]}
        data = assemble(index, frames=lie)
    else:
        footer = FOOTER.pack(HEADER.size, len(lie), claim, hashlib.sha256(lie).digest(), 1, 0, 0, MAGIC)
        data = HEADER.pack(MAGIC, 1, 0, 0) + lie + footer
    path = put(tmp_path, data)

    def open_and_read() -> None:
        with pytest.raises(atpack.AtpackError), atpack.open(path) as pack:
            pack.read_blob(digest)

    assert peak_allocation_while(open_and_read) < 16 << 20


@pytest.fixture(scope="module")
def four_mib_pack() -> bytes:
    """A valid pack of one incompressible 4 MiB blob."""
    return pack_bytes(Content(blobs=[(random.Random(3).randbytes(4 << 20), "")]), level=1)


def test_footer_claiming_an_index_longer_than_any_zstd_frame_of_its_size_is_refused_before_reading_it(
    tmp_path: Path, four_mib_pack: bytes
) -> None:
    # the footer says the index starts right after the header: offsets add up, only the length is absurd
    length = len(four_mib_pack) - HEADER.size - FOOTER.size
    path = put(tmp_path, with_footer(four_mib_pack, index_offset=HEADER.size, index_length=length))
    peak = peak_allocation_while(lambda: expect_refused(path, atpack.LimitError, "index"))
    assert peak < 1 << 20


def test_frame_longer_than_any_zstd_frame_of_its_size_is_refused_before_reading_it(tmp_path: Path) -> None:
    payload = compress_frame(b"tiny")
    region = payload + random.Random(4).randbytes(4 << 20)  # the frame "continues" for 4 MiB
    index = {"frames": [frame_entry(HEADER.size, region, 4)], "blobs": [[digest_bytes(b"tiny"), 0, 0, 4]]}
    path = put(tmp_path, assemble(index, frames=region))

    def open_and_read() -> None:
        with pytest.raises(atpack.LimitError), atpack.open(path) as pack:
            pack.read_blob(digest_bytes(b"tiny"))

    assert peak_allocation_while(open_and_read) < 1 << 20


def test_index_size_limit_is_checked_before_decompressing(tmp_path: Path, pack_data: bytes) -> None:
    # the index is valid: only the limit can refuse it, and it does so from the footer's size
    size = read_footer(pack_data).index_size
    path = put(tmp_path, pack_data)
    expect_refused(path, atpack.LimitError, "index of", limits=atpack.Limits(max_index_size=size - 1))
    atpack.open(path, limits=atpack.Limits(max_index_size=size)).close()


@pytest.mark.parametrize(
    "field, value",
    [("index_offset", 1 << 40), ("index_offset", 0), ("index_length", 1 << 40), ("index_length", 0)],
)
def test_footer_locating_the_index_elsewhere_than_before_the_footer_is_refused(
    tmp_path: Path, pack_data: bytes, field: str, value: int
) -> None:
    path = put(tmp_path, with_footer(pack_data, **{field: value}))
    expect_refused(path, atpack.LimitError, "does not end at the footer")


def test_frame_running_past_the_start_of_the_index_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def lengthen(index: dict[str, Any]) -> None:
        index["frames"][-1][1] += 1

    expect_refused(put(tmp_path, rewrite_index(pack_data, lengthen)), atpack.LimitError, "frames end at")


def test_frame_starting_past_the_end_of_the_file_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def move(index: dict[str, Any]) -> None:
        index["frames"][0][0] = len(pack_data) + 100

    expect_refused(put(tmp_path, rewrite_index(pack_data, move)), atpack.LimitError, "frame 0 starts at")


def test_blob_starting_past_the_end_of_its_frame_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def move(index: dict[str, Any]) -> None:
        blob = index["blobs"][0]
        blob[2] = index["frames"][blob[1]][2] + 10

    expect_refused(put(tmp_path, rewrite_index(pack_data, move)), atpack.LimitError, "overlaps or leaves a gap")


def test_blob_in_a_frame_that_does_not_exist_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def move(index: dict[str, Any]) -> None:
        big_blob(index)[1][1] = len(index["frames"])  # alone in its frame: moving it leaves no gap

    expect_refused(put(tmp_path, rewrite_index(pack_data, move)), atpack.LimitError, "does not exist")


def two_blob_frame(pack_data: bytes) -> tuple[int, list[list[Any]]]:
    index = read_index(pack_data)
    frame = next(f for f in range(len(index["frames"])) if sum(b[1] == f for b in index["blobs"]) >= 2)
    return frame, sorted((b for b in index["blobs"] if b[1] == frame), key=lambda b: b[2])


def test_overlapping_blobs_in_a_frame_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    _, (_, second, *_) = two_blob_frame(pack_data)

    def overlap(index: dict[str, Any]) -> None:
        for b in index["blobs"]:
            if b == second:
                b[2] -= 1

    expect_refused(put(tmp_path, rewrite_index(pack_data, overlap)), atpack.LimitError, "overlaps or leaves a gap")


def test_blobs_not_covering_their_whole_frame_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    def grow(index: dict[str, Any]) -> None:
        index["frames"][0][2] += 1

    expect_refused(put(tmp_path, rewrite_index(pack_data, grow)), atpack.LimitError, "blobs cover")


def test_gap_between_frames_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    region = frames_region(pack_data)
    index = read_index(pack_data)
    end0 = index["frames"][0][1]
    assert len(index["frames"]) >= 2

    def shift(index: dict[str, Any]) -> None:
        for f in index["frames"][1:]:
            f[0] += 1

    gapped = rewrite_index(pack_data, shift, frames=region[:end0] + b"\0" + region[end0:])
    expect_refused(put(tmp_path, gapped), atpack.LimitError, "frame 1 starts at .* contiguous")


def test_duplicate_blob_digests_are_refused(tmp_path: Path) -> None:
    # one frame holding the same blob twice, so that the layout itself is sound
    blob = b"twice"
    payload = compress_frame(blob + blob)
    d = digest_bytes(blob)
    index = {"frames": [frame_entry(HEADER.size, payload, 2 * len(blob))], "blobs": [[d, 0, 0, 5], [d, 0, 5, 5]]}
    expect_refused(put(tmp_path, assemble(index, frames=payload)), atpack.FormatError, "duplicate")


def test_sound_handmade_pack_is_accepted(tmp_path: Path) -> None:
    # the same construction as above, without the duplicate: proves assemble() itself is sound
    payload = compress_frame(b"onlyonce")
    index = {"frames": [frame_entry(HEADER.size, payload, 8)], "blobs": [[digest_bytes(b"onlyonce"), 0, 0, 8]]}
    with atpack.open(put(tmp_path, assemble(index, frames=payload))) as pack:
        pack.verify()
        assert pack.read_blob(digest_bytes(b"onlyonce")) == b"onlyonce"


def test_unsorted_blob_table_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def swap(index: dict[str, Any]) -> None:
        index["blobs"][0], index["blobs"][1] = index["blobs"][1], index["blobs"][0]

    expect_refused(put(tmp_path, rewrite_index(pack_data, swap)), atpack.FormatError, "not sorted")


def test_duplicate_artifacts_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    def duplicate(index: dict[str, Any]) -> None:
        index["artifacts"].insert(0, index["artifacts"][0])

    expect_refused(put(tmp_path, rewrite_index(pack_data, duplicate)), atpack.FormatError, "duplicate")


def test_artifacts_out_of_digest_order_are_refused_by_verify(tmp_path: Path, pack_data: bytes) -> None:
    def reverse(index: dict[str, Any]) -> None:
        index["artifacts"].reverse()

    pack = atpack.open(put(tmp_path, rewrite_index(pack_data, reverse)))  # usable: order is the writer's duty
    with pytest.raises(atpack.FormatError, match="out of order"):
        pack.verify()
    pack.close()


def test_two_artifacts_answering_the_same_question_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    rival = msgspec.to_builtins(best_config(INDUCTOR_ENV.digest, 0, num_warps=16))

    def add_rival(index: dict[str, Any]) -> None:
        index["artifacts"].append(rival)
        sort_artifacts(index)

    expect_refused(put(tmp_path, rewrite_index(pack_data, add_rival)), atpack.FormatError, "two inductor.best_config")


def test_artifact_referring_to_a_missing_blob_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    orphan = msgspec.to_builtins(triton_kernel(TRITON_ENV.digest, 9, [("kernel_9.json", b"not in the pack")]))

    def add_orphan(index: dict[str, Any]) -> None:
        index["artifacts"].append(orphan)
        sort_artifacts(index)

    expect_refused(put(tmp_path, rewrite_index(pack_data, add_orphan)), atpack.FormatError, "missing blob")


def test_artifact_referring_to_a_missing_environment_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def drop_env(index: dict[str, Any]) -> None:
        index["environments"] = [e for e in index["environments"] if canonical(e) != canonical(INDUCTOR_ENV)]

    expect_refused(put(tmp_path, rewrite_index(pack_data, drop_env)), atpack.FormatError, "missing environment")


def test_duplicate_environments_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    def duplicate(index: dict[str, Any]) -> None:
        index["environments"].insert(0, index["environments"][0])

    expect_refused(put(tmp_path, rewrite_index(pack_data, duplicate)), atpack.FormatError, "duplicate environment")


def test_environments_out_of_digest_order_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    def reverse(index: dict[str, Any]) -> None:
        index["environments"].reverse()

    expect_refused(put(tmp_path, rewrite_index(pack_data, reverse)), atpack.FormatError, "not sorted")


def test_digested_annotation_without_a_value_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def drop(index: dict[str, Any]) -> None:
        del index["annotations"]["org.example.run"]

    expect_refused(put(tmp_path, rewrite_index(pack_data, drop)), atpack.FormatError, "has no value")


def test_index_that_is_not_json_is_refused(tmp_path: Path) -> None:
    raw = b"not json"
    payload = compress_frame(raw)
    footer = FOOTER.pack(HEADER.size, len(payload), len(raw), hashlib.sha256(payload).digest(), 1, 0, 0, MAGIC)
    expect_refused(put(tmp_path, HEADER.pack(MAGIC, 1, 0, 0) + payload + footer), atpack.FormatError, "index")


def test_index_with_a_mistyped_table_is_refused(tmp_path: Path, pack_data: bytes) -> None:
    def mistype(index: dict[str, Any]) -> None:
        index["frames"][0][2] = "many"

    expect_refused(put(tmp_path, rewrite_index(pack_data, mistype)), atpack.FormatError, "index")


@pytest.mark.parametrize("table", ["frames", "blobs", "artifacts", "environments"])
def test_counts_over_the_limits_are_refused(tmp_path: Path, pack_data: bytes, table: str) -> None:
    count = len(read_index(pack_data)[table])
    path = put(tmp_path, pack_data)
    limits = atpack.Limits(**{f"max_{table}": count - 1})
    expect_refused(path, atpack.LimitError, f"{count} {table} exceeds the limit of {count - 1}", limits=limits)


@pytest.mark.parametrize("table", ["frames", "blobs", "artifacts", "environments"])
def test_counts_at_the_limits_are_accepted(tmp_path: Path, pack_data: bytes, table: str) -> None:
    count = len(read_index(pack_data)[table])
    with atpack.open(put(tmp_path, pack_data), limits=atpack.Limits(**{f"max_{table}": count})) as pack:
        pack.verify()


# =========================================================================== unknown kinds


def with_future_artifact(pack_data: bytes) -> tuple[bytes, bytes, str]:
    """`pack_data` plus an artifact of a kind this version does not know, referring to one of
    its blobs; returns the pack, the artifact's bytes and the blob's digest."""
    index = read_index(pack_data)
    blob = index["blobs"][0][0]
    raw = canonical(
        {
            "env": TRITON_ENV.digest,
            "kind": "future.thing/1",
            "blob": blob,
            "nested": {"list": [1, 2.5, None, "text"], "z": True},
        }
    )
    assert raw.startswith(b'{"blob":"sha256:')  # canonical: sorted keys, compact

    def add(index: dict[str, Any]) -> None:
        index["artifacts"].append(raw)
        sort_artifacts(index)

    return rewrite_index(pack_data, add), raw, blob


def test_an_unknown_kind_opens_as_an_unknown_artifact(tmp_path: Path, pack_data: bytes) -> None:
    data, raw, blob = with_future_artifact(pack_data)
    with atpack.open(put(tmp_path, data)) as pack:
        pack.verify()
        (unknown,) = [a for a in pack.artifacts if isinstance(a, atpack.UnknownArtifact)]
    assert unknown.kind == "future.thing/1"
    assert unknown.env == TRITON_ENV.digest
    assert unknown.raw == raw
    assert list(unknown.blob_refs()) == [blob]


def test_an_unknown_kind_counts_in_the_pack_digest(tmp_path: Path, pack_data: bytes) -> None:
    data, _, _ = with_future_artifact(pack_data)
    assert open_bytes(data).digest != open_bytes(pack_data).digest


def test_copying_an_unknown_kind_keeps_its_bytes_and_its_blob(tmp_path: Path, pack_data: bytes) -> None:
    data, raw, blob = with_future_artifact(pack_data)
    with atpack.open(put(tmp_path, data)) as source:
        (unknown,) = [a for a in source.artifacts if isinstance(a, atpack.UnknownArtifact)]
        expected_blob = source.read_blob(blob)
        with atpack.create(tmp_path / "copy.atpack") as writer:
            writer.copy_from(source, [unknown])
    with atpack.open(tmp_path / "copy.atpack") as copy:
        copy.verify()
        assert len(copy.artifacts) == 1
        assert isinstance(copy.artifacts[0], atpack.UnknownArtifact)
        assert copy.artifacts[0].raw == raw
        assert copy.read_blob(blob) == expected_blob
        assert list(copy.manifest.environments) == [TRITON_ENV.digest]


def test_copying_every_artifact_and_annotation_gives_a_pack_with_the_same_digest(
    tmp_path: Path, pack_data: bytes
) -> None:
    data, _, _ = with_future_artifact(pack_data)
    with atpack.open(put(tmp_path, data)) as source:
        with atpack.create(tmp_path / "copy.atpack", group_size=GROUP) as writer:
            writer.copy_from(source, source.artifacts)
            for key, value in source.manifest.annotations.items():
                writer.annotate(key, value, digested=key in source.manifest.digested_annotations)
        with atpack.open(tmp_path / "copy.atpack") as copy:
            read_everything(copy)
            assert copy.artifacts == source.artifacts
            assert copy.digest == source.digest


def test_copying_a_known_artifact_brings_its_environment_and_blobs(
    tmp_path: Path, packed: tuple[Path, atpack.PackInfo], content: Content
) -> None:
    with atpack.open(packed[0]) as source:
        kernel = next(a for a in source.artifacts if isinstance(a, atpack.TritonKernel))
        with atpack.create(tmp_path / "copy.atpack") as writer:
            writer.copy_from(source, [kernel])
    with atpack.open(tmp_path / "copy.atpack") as copy:
        assert copy.artifacts == (kernel,)
        assert copy.manifest.environments == {TRITON_ENV.digest: TRITON_ENV}
        blobs = content_blobs(content)
        assert {f.blob: copy.read_blob(f.blob) for f in kernel.files} == {f.blob: blobs[f.blob] for f in kernel.files}


# =========================================================================== version rules


def test_major_version_2_is_refused_naming_the_version(tmp_path: Path, pack_data: bytes) -> None:
    expect_refused(put(tmp_path, with_version(pack_data, 2, 0)), atpack.FormatError, r"format 2\.0")


def test_minor_version_bump_is_accepted(tmp_path: Path, pack_data: bytes) -> None:
    with atpack.open(put(tmp_path, with_version(pack_data, 1, 9))) as pack:
        assert pack.format_version == (1, 9)
        read_everything(pack)


def test_unknown_index_fields_of_a_minor_version_bump_are_ignored(tmp_path: Path, pack_data: bytes) -> None:
    def add_field(index: dict[str, Any]) -> None:
        index["zz_added_in_1_1"] = {"anything": [1, 2]}

    data = with_version(rewrite_index(pack_data, add_field), 1, 1)
    with atpack.open(put(tmp_path, data)) as pack:
        read_everything(pack)


def test_nonzero_footer_flags_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    expect_refused(put(tmp_path, with_footer(pack_data, flags=1)), atpack.FormatError, "reserved")


def test_nonzero_header_flags_are_refused(tmp_path: Path, pack_data: bytes) -> None:
    expect_refused(put(tmp_path, with_header(pack_data, flags=1)), atpack.FormatError, "flags 0x1")


def test_header_and_footer_must_name_the_same_version(tmp_path: Path, pack_data: bytes) -> None:
    expect_refused(put(tmp_path, with_footer(pack_data, minor=0)), atpack.FormatError, "header says format 1.2")


# =========================================================================== writer errors


def missing_environment(writer: PackWriter) -> None:
    writer.add(best_config(INDUCTOR_ENV.digest, 0))


def missing_blob(writer: PackWriter) -> None:
    writer.add_environment(TRITON_ENV)
    writer.add(triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b"never added")]))


@pytest.mark.parametrize(
    "mistake, message",
    [(missing_environment, "environment .* never added"), (missing_blob, "blob .* never added")],
    ids=["environment", "blob"],
)
def test_finish_refuses_a_reference_to_something_never_added(mistake: Any, message: str) -> None:
    writer = PackWriter(io.BytesIO())
    mistake(writer)
    with pytest.raises(atpack.FormatError, match=message):
        writer.finish()
    writer.abort()


@pytest.mark.parametrize("mistake", [missing_environment, missing_blob], ids=["environment", "blob"])
def test_create_publishes_nothing_when_finish_fails(tmp_path: Path, mistake: Any) -> None:
    target = tmp_path / "out" / "p.atpack"
    with pytest.raises(atpack.FormatError), atpack.create(target) as writer:
        writer.add_blob(b"some data")
        mistake(writer)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_create_publishes_nothing_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "p.atpack"
    with pytest.raises(RuntimeError), atpack.create(target) as writer:
        writer.add_blob(b"some data")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_create_leaves_the_previous_pack_in_place(tmp_path: Path, pack_data: bytes) -> None:
    target = put(tmp_path, pack_data, "p.atpack")
    with pytest.raises(atpack.FormatError), atpack.create(target) as writer:
        missing_environment(writer)
    assert target.read_bytes() == pack_data
    assert list(tmp_path.iterdir()) == [target]


# =========================================================================== canonical artifacts


def known_raw() -> bytes:
    return canonical(best_config(INDUCTOR_ENV.digest, 0))


def future_raw() -> bytes:
    return canonical({"env": INDUCTOR_ENV.digest, "kind": "future.thing/1", "value": 1})


def _unsorted(raw: bytes) -> bytes:
    """The same JSON object with its top-level keys in reverse order."""
    items = list(msgspec.json.decode(raw).items())[::-1]
    return b"{" + b",".join(msgspec.json.encode(k) + b":" + canonical(v) for k, v in items) + b"}"


@pytest.mark.parametrize(
    "make_raw",
    [
        pytest.param(lambda: known_raw().replace(b",", b", ", 1), id="known-whitespace"),
        pytest.param(lambda: _unsorted(known_raw()), id="known-unsorted-keys"),
        pytest.param(lambda: known_raw().replace(b',"found', b',"extra":[],"found'), id="known-default-written-out"),
        pytest.param(lambda: future_raw().replace(b'":', b'": '), id="unknown-whitespace"),
        pytest.param(lambda: _unsorted(future_raw()), id="unknown-unsorted-keys"),
        pytest.param(lambda: future_raw()[:-1] + b',"value":1}', id="unknown-duplicate-key"),
    ],
)
def test_non_canonical_artifact_json_is_refused_by_verify(tmp_path: Path, pack_data: bytes, make_raw: Any) -> None:
    raw = make_raw()
    assert raw not in (known_raw(), future_raw())

    def plant(index: dict[str, Any]) -> None:
        # in place of its canonical twin, so that nothing else is wrong with the pack
        index["artifacts"] = [a for a in index["artifacts"] if artifact_bytes(a) != known_raw()]
        index["artifacts"].append(raw)
        sort_artifacts(index)

    path = put(tmp_path, rewrite_index(pack_data, plant))
    with atpack.open(path) as pack, pytest.raises(atpack.FormatError, match="not in canonical form"):
        pack.verify()


def test_writer_refuses_an_unknown_artifact_that_is_not_in_canonical_form() -> None:
    # else it would write a pack that its own verify() refuses
    writer = PackWriter(io.BytesIO())
    writer.add_environment(INDUCTOR_ENV)
    raw = future_raw().replace(b'":', b'": ')
    with pytest.raises(atpack.FormatError, match="canonical"):
        writer.add(atpack.UnknownArtifact("future.thing/1", INDUCTOR_ENV.digest, raw))
    writer.abort()


# =========================================================================== properties

PG = 16  # group size for the property test


@st.composite
def best_configs(draw: st.DrawFn) -> atpack.InductorBestConfig:
    seed = draw(st.text(min_size=1, max_size=8))
    kwargs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["XBLOCK", "YBLOCK", "R0_BLOCK"]),
                st.one_of(st.integers(1, 4096), st.booleans(), st.none()),
            ),
            max_size=3,
            unique_by=lambda kv: kv[0],
        )
    )
    return atpack.InductorBestConfig(
        env=draw(st.sampled_from([INDUCTOR_ENV.digest, TRITON_ENV.digest])),
        path=f"{hex64(seed)[:2]}/{hex64('p' + seed)}.best_config",
        kwargs=tuple(kwargs),
        num_warps=draw(st.sampled_from([1, 2, 4, 8, 16])),
        num_stages=draw(st.integers(1, 5)),
        found_by_coordesc=draw(st.sampled_from([msgspec.UNSET, True, False])),
        time_taken_ms=draw(
            st.one_of(
                st.just(msgspec.UNSET), st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
            )
        ),
    )


@hypothesis.settings(max_examples=200, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(
    blobs=st.lists(st.tuples(st.binary(max_size=3 * PG), st.sampled_from(["", "a", "cubin"])), max_size=12),
    configs=st.lists(best_configs(), max_size=6, unique_by=lambda a: a.path),
    random=st.randoms(use_true_random=False),
)
def test_property_round_trip_is_exact_and_independent_of_insertion_order(
    blobs: list[tuple[bytes, str]], configs: list[atpack.InductorBestConfig], random: random.Random
) -> None:
    artifacts: list[atpack.Artifact | atpack.UnknownArtifact] = list(configs)
    if blobs:
        names = [f"kernel_0{suffix}" for suffix in KERNEL_SUFFIXES]  # as many as blobs may be drawn
        artifacts.append(triton_kernel(TRITON_ENV.digest, 0, [(names[i], b) for i, (b, _) in enumerate(blobs)]))
    content = Content([INDUCTOR_ENV, TRITON_ENV], blobs, artifacts, [("org.example.n", str(len(blobs)), True)])
    ops = content.operations()
    shuffled = list(ops)
    random.shuffle(shuffled)

    outputs = []
    for order in (ops, shuffled):
        out = io.BytesIO()
        writer = PackWriter(out, group_size=PG, level=1)
        apply(writer, order)
        info = writer.finish()
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]

    with open_bytes(outputs[0]) as pack:
        assert pack.digest == info.digest
        assert sorted(pack.artifacts, key=atpack.artifacts.artifact_digest) == sorted(
            artifacts, key=atpack.artifacts.artifact_digest
        )
        expected = {digest_bytes(b): b for b, _ in blobs}
        assert read_everything(pack) == expected
        assert dict(pack.read_blobs(expected)) == expected
