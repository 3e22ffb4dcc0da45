"""Where packs live: local files, memory://, S3 and fsspec chained URLs.

S3 here is a real S3-protocol server (moto in server mode on 127.0.0.1, see
`atpack.testing.s3`) behind a proxy that counts the bytes it sends, so what a reader fetches is
measured on the wire, not inferred.

What this module pins down:

* A remote reader fetches the tail (footer and index) with one ranged read and each blob's
  frame on demand: reading one small blob of a 50 MB pack on S3 costs well under 1 MB.
* Publishing is atomic: until the `atpack.create` block has ended, nothing exists at the
  target; if it raises, nothing is published, a pack already there stays as it was, and
  no temporary file or multipart upload is left behind.
* URLs and storage_options go to fsspec unchanged; a pack that cannot be reached or
  written is an `atpack.StorageError` naming the URL.
* A store's cost scales with the pack, not the store: a push or a pull makes the same requests
  into a store of 10 packs as into one of 1,000 (`tools/bench_store.py` measures up to 10,000).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import hashlib
import os
import pathlib
import random
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
import s3fs

import atpack
from atpack.artifacts import InductorBestConfig, KernelFile, TritonKernel, artifact_digest
from atpack.store import Store
from atpack.testing.faults import sample_blobs, store_objects, write_pack

MB = 1_000_000
MiB = 1 << 20

ENV = atpack.Environment(
    torch_version="2.8.0",
    torch_key=hashlib.sha256(b"torch").hexdigest(),
    cache_key_tag="tag",
    triton_version="3.4.0",
    device_name="NVIDIA H100 80GB HBM3",
)

# --------------------------------------------------------------------------- content


@dataclasses.dataclass
class Content:
    """What a test wrote: the artifacts and the bytes of every blob, by digest."""

    artifacts: list[atpack.Artifact] = dataclasses.field(default_factory=list)
    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def ptx_like(rng: random.Random, size: int) -> bytes:
    """Text that compresses like a real kernel source (PTX): repetitive, not constant."""
    ops = ("mov.u32", "ld.global.f32", "st.global.f32", "fma.rn.f32", "add.s32", "setp.lt.s32", "bra")
    lines = []
    length = 0
    while length < size:
        line = f"\t{rng.choice(ops)} \t%r{rng.randrange(64)}, %r{rng.randrange(64)}, {rng.randrange(1 << 12)};\n"
        lines.append(line)
        length += len(line)
    return "".join(lines).encode()[:size]


def add_kernel(writer: atpack.PackWriter, content: Content, i: int, files: dict[str, bytes]) -> TritonKernel:
    """A `triton.kernel/1` artifact, ``kernel_<i>``, whose files are stored as blobs (with a
    small metadata file ``kernel_<i>.json`` unless `files` has one)."""
    env = writer.add_environment(ENV)
    entries = []
    files = {**files, f"kernel_{i}.json": files.get(f"kernel_{i}.json", f'{{"name": "kernel_{i}"}}'.encode())}
    for name, data in files.items():
        digest = writer.add_blob(data, hint=os.path.splitext(name)[1])
        content.blobs[digest] = data
        entries.append(KernelFile(name, digest, len(data)))
    kernel = TritonKernel(env=env, cache_key=_hex(f"kernel-{i}")[:52], name=f"kernel_{i}", files=tuple(entries))
    writer.add(kernel)
    content.artifacts.append(kernel)
    return kernel


def add_best_config(writer: atpack.PackWriter, content: Content, i: int) -> InductorBestConfig:
    """An `inductor.best_config/1` artifact (no blobs)."""
    env = writer.add_environment(ENV)
    h = _hex(f"best-config-{i}")
    config = InductorBestConfig(
        env=env, path=f"{h[:2]}/{h}.best_config", kwargs=(("XBLOCK", 2 ** (i % 10)),), num_warps=4, num_stages=1
    )
    writer.add(config)
    content.artifacts.append(config)
    return config


def fill_small(writer: atpack.PackWriter, seed: int = 0) -> Content:
    """A few kernels and configs; with a small group size, spread over several frames."""
    rng = random.Random(seed)
    content = Content()
    for i in range(4):
        add_kernel(
            writer,
            content,
            i,
            {
                f"kernel_{i}.ptx": ptx_like(rng, rng.randrange(2_000, 40_000)),
                f"kernel_{i}.json": f'{{"name": "kernel_{i}", "seed": {seed}}}'.encode(),
            },
        )
    add_kernel(writer, content, 4, {"kernel_4.cubin": rng.randbytes(200_000)})
    for i in range(5):
        add_best_config(writer, content, i)
    return content


def write_small(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, seed: int = 0
) -> tuple[atpack.PackInfo, Content]:
    """Write a small pack; return what `create` reported and what went in."""
    with atpack.create(url, storage_options=storage_options, group_size=16 * 1024) as writer:
        content = fill_small(writer, seed)
    assert writer.info is not None
    return writer.info, content


def assert_reads_back(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None, info: atpack.PackInfo, content: Content
) -> None:
    with atpack.open(url, storage_options=storage_options) as pack:
        assert pack.size == info.size
        assert pack.digest == info.digest
        assert sorted(map(artifact_digest, pack.artifacts)) == sorted(map(artifact_digest, content.artifacts))
        for digest, data in content.blobs.items():
            assert pack.read_blob(digest) == data
        assert dict(pack.read_blobs(content.blobs)) == content.blobs
        pack.verify()


class Boom(Exception):
    """What a test raises inside an `atpack.create` block."""


def create_and_fail(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, seed: int = 0
) -> None:
    """Run an `atpack.create` block that adds content, then raises `Boom`. (A function, so
    that nothing of the failed writer outlives it in the caller's frame.)"""
    with pytest.raises(Boom), atpack.create(url, storage_options=storage_options) as writer:
        fill_small(writer, seed)
        raise Boom


def write_in_parts(url: str, storage_options: dict[str, Any]) -> atpack.PackInfo:
    """Write a pack of 12 MiB (three incompressible 4 MiB blobs, each in a frame of its own)."""
    with atpack.create(url, storage_options=storage_options) as writer:
        for i in range(3):
            add_kernel(writer, Content(), i, {f"kernel_{i}.cubin": random.Random(i).randbytes(4 * MiB)})
    assert writer.info is not None
    return writer.info


@contextlib.contextmanager
def garbage_collected_here() -> Iterator[list[str]]:
    """Collect garbage only at the end of the block, in this thread (not at random, in
    whatever thread allocates next), so finalizers of abandoned files run deterministically.
    Yields the list of what finalizers raised meanwhile (collected, not printed)."""
    raised: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: raised.append(f"{u.exc_type.__name__}: {u.exc_value} ({u.err_msg} {u.object!r})")
    gc.disable()
    try:
        yield raised
    finally:
        gc.enable()
        gc.collect()
        sys.unraisablehook = previous


# --------------------------------------------------------------------------- locations


@dataclasses.dataclass
class Location:
    """Where a test puts its pack, and how to look at that place without atpack."""

    kind: str
    url: str | os.PathLike[str]
    storage_options: dict[str, Any] | None
    fs: Any  # the filesystem holding the pack (for a chained URL: the remote one)
    path: str  # the pack's path on `fs`

    def exists(self) -> bool:
        self.fs.invalidate_cache()
        return bool(self.fs.exists(self.path))


LOCATIONS = ["local-str", "local-pathlib", "file-url", "memory", "s3", "simplecache-s3"]


@pytest.fixture(params=LOCATIONS)
def location(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Location]:
    kind = request.param
    if kind.startswith(("local", "file")):
        folder = tmp_path / "packs"
        folder.mkdir()
        target = folder / "p.atpack"
        url = {"local-str": str(target), "local-pathlib": target, "file-url": target.as_uri()}[kind]
        yield Location(kind, url, None, fsspec.filesystem("file"), str(target))
    elif kind == "memory":
        root = f"/atpack-tests/{uuid.uuid4().hex}"
        memory = fsspec.filesystem("memory")
        memory.mkdir(root)
        yield Location(kind, f"memory://{root}/p.atpack", None, memory, f"{root}/p.atpack")
        memory.rm(root, recursive=True)
    else:
        s3 = request.getfixturevalue("s3")
        url = s3.url("packs/p.atpack")
        if kind == "s3":
            yield Location(kind, url, s3.storage_options, s3.filesystem(), url)
        else:
            options = {"s3": s3.storage_options, "simplecache": {"cache_storage": str(tmp_path / "cache")}}
            yield Location(kind, f"simplecache::{url}", options, s3.filesystem(), url)


# --------------------------------------------------------------------------- every location


def test_a_pack_reads_back_as_written(location: Location) -> None:
    info, content = write_small(location.url, location.storage_options)

    assert location.exists()
    assert_reads_back(location.url, location.storage_options, info, content)


def test_nothing_is_at_the_target_until_the_block_ends(location: Location) -> None:
    with atpack.create(location.url, storage_options=location.storage_options) as writer:
        fill_small(writer)
        writer.add_blob(random.Random(1).randbytes(3 * MiB))
        assert not location.exists()

    assert location.exists()


def test_a_failing_block_publishes_nothing(location: Location) -> None:
    with garbage_collected_here():
        create_and_fail(location.url, location.storage_options)

    assert not location.exists()


def test_a_pack_at_the_target_is_replaced_only_on_success(location: Location) -> None:
    old_info, old_content = write_small(location.url, location.storage_options, seed=1)

    with garbage_collected_here():
        create_and_fail(location.url, location.storage_options, seed=2)
    assert_reads_back(location.url, location.storage_options, old_info, old_content)

    new_info, new_content = write_small(location.url, location.storage_options, seed=2)
    assert new_info.digest != old_info.digest
    assert_reads_back(location.url, location.storage_options, new_info, new_content)


def test_a_missing_pack_is_a_storage_error_naming_it(location: Location) -> None:
    with pytest.raises(atpack.StorageError) as error:
        atpack.open(location.url, storage_options=location.storage_options)

    assert location.path in str(error.value)


def test_storage_options_are_not_modified(location: Location) -> None:
    options = location.storage_options or {}
    before = copy.deepcopy(options)

    write_small(location.url, options)
    atpack.open(location.url, storage_options=options).close()

    assert options == before


# --------------------------------------------------------------------------- local files


def test_local_publish_leaves_only_the_pack_in_the_folder(tmp_path: pathlib.Path) -> None:
    write_small(tmp_path / "p.atpack")

    assert os.listdir(tmp_path) == ["p.atpack"]


def test_local_failing_block_leaves_neither_the_pack_nor_a_temporary_file(tmp_path: pathlib.Path) -> None:
    create_and_fail(tmp_path / "p.atpack")

    assert os.listdir(tmp_path) == []


def test_local_failing_block_keeps_the_pack_that_was_there(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "p.atpack"
    write_small(target, seed=1)
    before = target.read_bytes()

    create_and_fail(target, seed=2)

    assert os.listdir(tmp_path) == ["p.atpack"]
    assert target.read_bytes() == before


def test_local_missing_folders_are_created(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "a" / "b" / "p.atpack"

    info, content = write_small(target)

    assert_reads_back(target, None, info, content)


def test_an_unknown_protocol_is_a_storage_error() -> None:
    with pytest.raises(atpack.StorageError, match="no-such-protocol://"):
        atpack.open("no-such-protocol://bucket/p.atpack")


# --------------------------------------------------------------------------- S3: what a reader fetches


@pytest.mark.slow
def test_s3_reading_one_small_blob_of_a_50mb_pack_transfers_under_1mb(s3) -> None:
    """60 incompressible blobs of about 1 MB (some above a 1 MB group size, each in a frame of
    its own, some below, each filling a shared frame) and 460 small artifacts. A reader reads
    whole frames: the default group size (64 MiB) would make this pack one frame."""
    rng = random.Random(50)
    url = s3.url("big.atpack")
    started = time.perf_counter()
    with atpack.create(url, storage_options=s3.storage_options, group_size=1 << 20) as writer:
        content = Content()
        for i in range(60):
            add_kernel(
                writer,
                content,
                i,
                {
                    f"kernel_{i}.cubin": rng.randbytes(rng.randrange(900_000, 1_200_000)),
                    f"kernel_{i}.json": f'{{"name": "kernel_{i}", "shared": 0}}'.encode(),
                },
            )
        for i in range(60, 260):
            small = add_kernel(
                writer,
                content,
                i,
                {
                    f"kernel_{i}.ptx": ptx_like(rng, rng.randrange(1_000, 8_000)),
                    f"kernel_{i}.json": f'{{"name": "kernel_{i}", "shared": 0}}'.encode(),
                },
            )
        for i in range(200):
            add_best_config(writer, content, i)
    written = time.perf_counter() - started
    assert writer.info is not None
    assert writer.info.blob_bytes >= 50 * MB
    assert s3.filesystem().size(url) == writer.info.size >= 50 * MB

    s3.reset_counters()
    started = time.perf_counter()
    with atpack.open(url, storage_options=s3.storage_options) as pack:
        assert len(pack.artifacts) == 460
        wanted = small.files[0]
        assert pack.read_blob(wanted.blob) == content.blobs[wanted.blob]
        fetched = pack.bytes_read
    read = time.perf_counter() - started
    sent = s3.bytes_sent

    print(
        f"\n50 MB test: pack {writer.info.size:,} bytes ({writer.info.frames} frames, {writer.info.blobs} blobs), "
        f"written in {written:.2f}s; open + one small blob in {read:.3f}s: "
        f"the reader asked for {fetched:,} bytes, the server sent {sent:,} bytes"
    )
    assert sent < 1 * MB
    assert sent - fetched < 16 * 1024  # the rest is HTTP headers: nothing is read ahead


def test_s3_read_blobs_fetches_each_frame_once(s3) -> None:
    url = s3.url("p.atpack")
    info, content = write_small(url, s3.storage_options)

    with atpack.open(url, storage_options=s3.storage_options) as pack:
        s3.reset_counters()
        assert dict(pack.read_blobs(content.blobs)) == content.blobs

    assert s3.bytes_sent < info.size + 16 * 1024


def test_s3_a_reader_of_a_pack_replaced_under_it_gets_an_error_not_wrong_bytes(s3) -> None:
    url = s3.url("p.atpack")
    _, old = write_small(url, s3.storage_options, seed=1)
    with atpack.open(url, storage_options=s3.storage_options) as pack:
        write_small(url, s3.storage_options, seed=2)

        with pytest.raises(atpack.FormatError):  # each frame's sha256 is checked
            for digest in old.blobs:
                pack.read_blob(digest)


# --------------------------------------------------------------------------- S3: atomic publish


@pytest.fixture
def parts_observed(s3, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """After each part s3fs uploads, what a client sees in the bucket (seen through boto3)."""
    seen: list[dict[str, Any]] = []
    upload_chunk = s3fs.core.S3File._upload_chunk

    def observed(self: s3fs.core.S3File, final: bool = False) -> Any:
        result = upload_chunk(self, final=final)
        if self.parts:
            seen.append(
                {
                    "parts": len(self.parts),
                    "keys": s3.keys(),
                    "exists": s3.filesystem().exists(f"{self.bucket}/{self.key}"),
                    "uploads": s3.multipart_uploads(),
                }
            )
        return result

    monkeypatch.setattr(s3fs.core.S3File, "_upload_chunk", observed)
    return seen


def test_s3_nothing_is_visible_while_the_parts_are_uploaded(s3, parts_observed: list[dict[str, Any]]) -> None:
    write_in_parts(s3.url("p.atpack"), {**s3.storage_options, "default_block_size": 5 * MiB})

    assert len(parts_observed) >= 2
    for seen in parts_observed:
        assert seen["keys"] == [] and not seen["exists"]
        assert seen["uploads"] == ["p.atpack"]
    assert s3.keys() == ["p.atpack"]
    assert s3.multipart_uploads() == []


def test_s3_failure_in_the_middle_of_the_upload_publishes_nothing_and_aborts_it(
    s3, parts_observed: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_chunk = s3fs.core.S3File._upload_chunk
    failed = []

    def connection_lost_after_the_first_part(self: s3fs.core.S3File, final: bool = False) -> Any:
        result = upload_chunk(self, final=final)
        if self.parts and not failed:
            failed.append(True)
            raise ConnectionResetError("connection lost (injected by the test)")
        return result

    monkeypatch.setattr(s3fs.core.S3File, "_upload_chunk", connection_lost_after_the_first_part)
    options = {**s3.storage_options, "default_block_size": 5 * MiB}
    with garbage_collected_here(), pytest.raises((ConnectionResetError, atpack.StorageError)):
        write_in_parts(s3.url("p.atpack"), options)

    assert parts_observed and parts_observed[0]["uploads"] == ["p.atpack"]  # it failed mid-upload
    assert s3.keys() == []
    assert s3.multipart_uploads() == []


def test_s3_failing_block_leaves_no_multipart_upload(s3) -> None:
    with garbage_collected_here() as raised_by_finalizers:
        create_and_fail(s3.url("p.atpack"), s3.storage_options)

    assert s3.keys() == []
    assert s3.multipart_uploads() == []
    assert raised_by_finalizers == []


def test_s3_a_cached_filesystem_keeps_no_file_once_create_returns(s3) -> None:
    options = {k: v for k, v in s3.storage_options.items() if k != "skip_instance_cache"}
    fs, _ = fsspec.core.url_to_fs(s3.url("a.atpack"), **options)  # what create and open will share
    try:
        write_small(s3.url("a.atpack"), options)
        create_and_fail(s3.url("b.atpack"), options)

        kept = len(fs.transaction.files)  # (a count: the assertion must not hold on to the files)
        assert kept == 0
    finally:
        with garbage_collected_here():
            fs.transaction.files.clear()
            s3fs.S3FileSystem.clear_instance_cache()


# --------------------------------------------------------------------------- S3: options and errors


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable(s3) -> dict[str, Any]:
    """Options naming an endpoint nobody listens on, retrying once, quickly."""
    return {
        **s3.storage_options,
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{_closed_port()}", "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }


def test_s3_options_reach_s3fs(s3, parts_observed: list[dict[str, Any]]) -> None:
    write_in_parts(s3.url("a.atpack"), s3.storage_options)
    assert parts_observed[-1]["parts"] == 1  # s3fs's default block size is 50 MiB

    write_in_parts(s3.url("b.atpack"), {**s3.storage_options, "default_block_size": 5 * MiB})
    assert parts_observed[-1]["parts"] > 1


def test_s3_unreachable_endpoint_on_open_is_a_storage_error_naming_the_pack(s3) -> None:
    write_small(s3.url("p.atpack"), s3.storage_options)
    options = _unreachable(s3)

    with pytest.raises(atpack.StorageError) as error:
        atpack.open(s3.url("p.atpack"), storage_options=options)

    assert s3.url("p.atpack") in str(error.value)
    where = options["client_kwargs"]["endpoint_url"].removeprefix("http://")
    assert f"connection refused: no server listens at {where}" in str(error.value)


def test_s3_unreachable_endpoint_on_create_is_a_storage_error_naming_the_pack(s3) -> None:
    with pytest.raises(atpack.StorageError, match=s3.url("p.atpack")):
        write_small(s3.url("p.atpack"), _unreachable(s3))


def test_s3_missing_bucket_on_create_is_a_storage_error_naming_the_pack(s3) -> None:
    url = f"s3://{s3.name}-missing/p.atpack"

    with pytest.raises(atpack.StorageError, match=url):
        write_small(url, s3.storage_options)


# --------------------------------------------------------------------------- chained URLs


def test_simplecache_s3_pack_is_on_s3_for_a_reader_with_an_empty_cache(s3, tmp_path: pathlib.Path) -> None:
    url = "simplecache::" + s3.url("p.atpack")
    info, content = write_small(url, {"s3": s3.storage_options, "simplecache": {"cache_storage": str(tmp_path / "a")}})

    assert s3.keys() == ["p.atpack"]
    assert_reads_back(
        url, {"s3": s3.storage_options, "simplecache": {"cache_storage": str(tmp_path / "b")}}, info, content
    )
    assert_reads_back(s3.url("p.atpack"), s3.storage_options, info, content)


def test_simplecache_s3_pack_is_uploaded_once(s3, tmp_path: pathlib.Path) -> None:
    options = {"s3": s3.storage_options, "simplecache": {"cache_storage": str(tmp_path)}}
    with atpack.create("simplecache::" + s3.url("p.atpack"), storage_options=options) as writer:
        add_kernel(writer, Content(), 0, {"kernel_0.cubin": random.Random(0).randbytes(2 * MiB)})
        s3.reset_counters()

    assert writer.info is not None
    assert s3.bytes_received < 1.5 * writer.info.size


# --------------------------------------------------------------------------- a store that scales


def _fill_store(bucket: Any, packs: int) -> None:
    """`packs` small packs in the store at ``store/`` of `bucket`, put straight into the server."""
    bucket.put_directly({f"store/{path}": data for path, data in store_objects(packs, seed=packs).items()})


def _requests(proxy: Any, bucket: Any) -> list[tuple[str, str]]:
    """The requests the proxy saw (method, path), with the bucket's name taken out."""
    return [(r.method, r.path.replace(f"/{bucket.name}", "", 1)) for r in proxy.requests]


def test_s3_a_push_and_a_pull_cost_the_same_into_a_store_of_10_and_of_1000_packs(
    s3_server: Any, tmp_path: pathlib.Path
) -> None:
    """A store is never listed under blobs/: a blob is looked up by its name, so what a push or
    a pull asks of the store depends on the pack, not on what else the store holds."""
    pack = tmp_path / "new.atpack"
    write_pack(str(pack), {}, sample_blobs(20, 3000, seed=9))
    seen = {}
    with s3_server.fault_proxy() as proxy:
        for packs in (10, 1000):
            bucket = s3_server.new_bucket()
            try:
                _fill_store(bucket, packs)
                remote = Store(bucket.url("store"), storage_options=proxy.storage_options(bucket))
                proxy.reset()
                pushed = remote.push(pack, tags=["new"])
                push = _requests(proxy, bucket)
                proxy.reset()
                pulled = remote.pull(
                    "new", tmp_path / f"pulled-{packs}.atpack", local=Store(tmp_path / f"node-{packs}")
                )
                seen[packs] = (push, _requests(proxy, bucket))
                assert pushed.blobs_sent == pulled.blobs_fetched == 20
            finally:
                bucket.delete()
    assert sorted(seen[10][0]) == sorted(seen[1000][0]) and sorted(seen[10][1]) == sorted(seen[1000][1])
    push, pull = seen[1000]
    assert not [path for _, path in push + pull if "list-type" in path]  # nothing listed, blobs/ least of all
    assert len(push) == 20 + 20 + 2 and len(pull) == 1 + 2 + 20  # look-ups, blobs, record, tag; tag, record, blobs
    assert atpack.open(tmp_path / "pulled-1000.atpack").digest == atpack.open(pack).digest


def test_tags_are_listed_without_being_read_and_read_together(s3: Any) -> None:
    _fill_store(s3, 50)  # a tag every 10 packs
    with s3.server.fault_proxy() as proxy:
        remote = Store(s3.url("store"), storage_options=proxy.storage_options(s3))
        names = remote.tags()
        assert names == sorted(f"filler-{i}" for i in range(0, 50, 10))
        assert [(m, "list-type" in path) for m, path in _requests(proxy, s3)] == [("GET", True)]  # one listing
        proxy.reset()
        digests = remote.resolve_many(names)
        assert sorted(_requests(proxy, s3)) == [("GET", f"/store/tags/{name}") for name in names]  # each read once
        assert all(d.startswith("sha256:") for d in digests.values())
        assert remote.resolve(names[0]) == digests[names[0]]


def test_a_local_store_blob_damaged_after_its_fetch_is_fetched_again(tmp_path: pathlib.Path) -> None:
    """A node-local store outlives a pull (a disk error, a crash mid-copy): a blob there that no
    longer matches its digest is fetched again from the store the record comes from, once."""
    vector = pathlib.Path(__file__).parent.parent / "spec" / "vectors" / "h100-subset.atpack"
    remote, local = atpack.Store(str(tmp_path / "remote")), atpack.Store(str(tmp_path / "local"))
    remote.push(vector, tags=["v1"])
    first = remote.pull("v1", tmp_path / "first.atpack", local=local)
    assert first.blobs_fetched == first.blobs > 1
    blobs = sorted((tmp_path / "local" / "blobs").rglob("*"))
    damaged = next(p for p in blobs if p.is_file())
    damaged.write_bytes(damaged.read_bytes()[:-8] + b"\0" * 8)  # the frame's checksum no longer matches
    again = remote.pull("v1", tmp_path / "again.atpack", local=local)
    assert again.blobs_fetched == 1  # only the damaged one
    assert atpack.open(tmp_path / "again.atpack").digest == atpack.open(vector).digest == again.digest
    assert local.damaged(remote.record(remote.resolve("v1")).blobs) == []  # repaired in place
