"""A store of packs on any fsspec URL, content-addressed, with named tags.

Layout under the store's root::

    blobs/<2 hex>/<64 hex>     a blob, as one zstd frame (content size and checksum set)
    packs/<64 hex>.json.zst    a pack's record (zstd-compressed JSON): its environments,
                               artifacts and annotations, each blob's digest and size; named by
                               the pack's content digest
    tags/<name>                the digest of a pack, and a newline

Many machines push packs (blobs already in the store are not sent again); a deployment pulls
one tag. A pull assembles the pack from a local store, fetching only the blobs that store lacks.
Every object is written atomically, a tag last, so a reader that sees a tag sees all it needs.

What a push or a pull costs depends on the pack, not on the store: blobs are looked up one by
one (concurrently, on object stores), never by listing the store, and tags are listed without
being read. Every call to the store ends within the deadline of its `storage.Retry` (``retry``,
else ``ATPACK_TIMEOUT``, else 60 s), transient errors retried within it.

A store is not trusted to be well-formed: what a record declares is checked against the
store's `Limits` before anything is fetched, every object is read no further than the size it
must have, blobs are fetched in batches bounded by bytes, and a pulled pack is published only if
its digest is the one asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import fsspec.asyn
import msgspec
import zstandard
from fsspec.implementations.local import LocalFileSystem

from . import storage
from .artifacts import Artifact, Environment
from .digest import Digest, digest_bytes
from .errors import AtpackError, IntegrityError, LimitError, NotFoundError, StorageError
from .folders import atpack_cache_dir
from .pack import (
    DEFAULT_LEVEL,
    DEFAULT_LIMITS,
    AnnotationKey,
    Limits,
    Pack,
    PackInfo,
    _compress_bound,
    _decompress,
    check_index_expansion,
    create,
    decode_artifact,
    open_pack,
)

__all__ = ["PackRecord", "PullReport", "PushReport", "Store", "default_local_store"]

log = logging.getLogger(__name__)

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG_SIZE = 128  # a tag file holds a digest and a newline (72 bytes)


class PackRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A pack as a store keeps it: everything but the bytes of its blobs (their digests, sorted,
    and sizes)."""

    annotations: dict[AnnotationKey, str] = {}
    digested_annotations: tuple[AnnotationKey, ...] = ()
    environments: tuple[Environment, ...] = ()
    artifacts: tuple[msgspec.Raw, ...] = ()
    blobs: tuple[tuple[Digest, Annotated[int, msgspec.Meta(ge=0)]], ...] = ()


@dataclasses.dataclass
class PushReport:
    digest: str
    blobs: int
    blobs_sent: int
    bytes_sent: int
    tags: list[str]

    def format(self) -> str:
        tags = f", tagged {', '.join(self.tags)}" if self.tags else ""
        moved = _moved(self.blobs, self.blobs_sent, self.bytes_sent, "sent", "the store")
        return f"pushed {self.digest}: {moved}{tags}"


@dataclasses.dataclass
class PullReport:
    digest: str
    path: str
    blobs: int
    blobs_fetched: int
    bytes_fetched: int

    def format(self) -> str:
        moved = _moved(self.blobs, self.blobs_fetched, self.bytes_fetched, "fetched", "the local store")
        return f"pulled {self.digest} into {self.path}: {moved}"


def _moved(total: int, moved: int, size: int, verb: str, holder: str) -> str:
    """What a push sent (a pull fetched) of a pack's `total` blobs, and what `holder` had already:
    each case in its own words (a store that had nothing is not said to have had the rest)."""

    def blobs(n: int) -> str:
        return f"{n:,} blob{'s' * (n != 1)}"

    if total == 0:
        return f"no blob {verb}: the pack has none"
    if moved == 0:
        return f"no blob {verb}: {holder} had {'it' if total == 1 else f'all {total:,}'}"
    if moved == total:
        return f"{'all ' * (total > 1)}{blobs(total)} {verb} ({size:,} bytes)"
    return f"{moved:,} of {blobs(total)} {verb} ({size:,} bytes); {holder} had the other {total - moved:,}"


def default_local_store() -> str:
    """The node-local store pulls go through: ``$ATPACK_CACHE_DIR/store``."""
    return os.path.join(atpack_cache_dir(), "store")


class Store:
    """A pack store at `url` (any fsspec URL; `storage_options` passed through). What is read
    from it is held to `limits`; every call to it ends within the deadline of `retry` (default:
    `storage.default_retry()`), transient errors retried within it."""

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        storage_options: dict[str, Any] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        retry: storage.Retry | None = None,
    ) -> None:
        self.url = os.fspath(url).rstrip("/")
        self._options = storage_options
        self._limits = limits
        self._retry = retry
        self._fs, self._root = storage.resolve(self.url, storage_options)

    # -- names

    def _path(self, *parts: str) -> str:
        return "/".join([self._root.rstrip("/"), *parts])

    def _url(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    @staticmethod
    def _blob_parts(digest: str) -> tuple[str, str, str]:
        hex_ = digest.split(":", 1)[1]
        return "blobs", hex_[:2], hex_

    def _call(self, parts: tuple[str, ...], what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``fs.method(path of parts, ...)`` within the deadline (see `storage.call`)."""
        return storage.call(
            self._fs, self._url(*parts), what, method, self._path(*parts), *args, retry=self._retry, **kwargs
        )

    # -- reading

    def resolve(self, ref: str) -> str:
        """The pack digest a tag names (a digest is returned as it is)."""
        if _DIGEST.fullmatch(ref):
            return ref
        return self.resolve_many([ref])[ref]

    def resolve_many(self, refs: Iterable[str]) -> dict[str, str]:
        """The pack digest each tag names (digests are returned as they are); the tags are read
        together (concurrently, on object stores)."""
        refs = list(dict.fromkeys(refs))
        names = [ref for ref in refs if not _DIGEST.fullmatch(ref)]
        for name in names:
            _check_tag(name)
        paths = [self._path("tags", name) for name in names]
        raws = storage.fetch(
            self._fs,
            self.url,
            f"reading tag {names[0]!r}" if len(names) == 1 else f"reading {len(names)} tags",
            paths,
            [0] * len(names),
            [_TAG_SIZE] * len(names),
            retry=self._retry,
        )
        found = {ref: ref for ref in refs if _DIGEST.fullmatch(ref)}
        for name, raw in zip(names, raws):
            if isinstance(raw, FileNotFoundError):
                raise NotFoundError(f"{self.url}: no tag {name!r}")
            text = raw.decode("ascii", "replace").strip()
            if not _DIGEST.fullmatch(text):
                raise IntegrityError(f"{self.url}: tag {name!r} does not hold a pack digest")
            found[name] = text
        return {ref: found[ref] for ref in refs}

    def record(self, digest: str) -> PackRecord:
        """The record of a pack, checked against its digest and the store's limits (its size,
        its counts, each blob's size and their total) before any of its blobs is fetched."""
        what = f"{self.url}: pack record {digest}"
        limit = self._limits.max_index_size
        parts = ("packs", f"{digest.split(':', 1)[1]}.json.zst")
        try:
            size = self._call(parts, "reading its size", "size")  # no more than it holds: a reader allocates that
            bound = _compress_bound(limit)
            if size is not None and size > bound:
                raise LimitError(f"{what}: {size:,} bytes, more than any zstd frame of at most {limit:,} bytes")
            frame = self._call(parts, "reading", "cat_file", start=0, end=(bound if size is None else size) + 1)
        except StorageError as e:
            if isinstance(e.__cause__, FileNotFoundError):
                raise NotFoundError(f"{self.url}: no pack {digest}") from None
            raise
        raw = _unzstd(frame, limit, what, self._limits)
        try:
            record = msgspec.json.decode(raw, type=PackRecord)
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            raise IntegrityError(f"{what}: {e}") from e
        _check_record(record, self._limits, what)
        if _record_digest(record) != digest:
            raise IntegrityError(f"{what} does not match its digest")
        return record

    def tags(self) -> list[str]:
        """The names of the store's tags, sorted (one listing; none is read: see `resolve_many`)."""
        try:
            found = self._call(("tags",), "listing tags", "ls", detail=False)
        except StorageError as e:
            if isinstance(e.__cause__, FileNotFoundError):
                return []
            raise
        return sorted(name for name in (p.rstrip("/").rsplit("/", 1)[-1] for p in found) if _TAG.fullmatch(name))

    def has_blob(self, digest: str) -> bool:
        return not self.missing([digest])

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The blobs of `digests` the store lacks: each looked up (concurrently, on object stores),
        so that the cost depends on how many are asked for, not on how many the store holds."""
        digests = list(digests)
        paths = [self._path(*self._blob_parts(d)) for d in digests]
        what = f"looking up {len(paths)} blob{'s' * (len(paths) != 1)}"
        here = storage.present(self._fs, self.url, what, paths, retry=self._retry)
        return [d for d, found in zip(digests, here) if not found]

    def read_blobs(self, blobs: Iterable[tuple[str, int]]) -> Iterator[tuple[str, bytes, bytes]]:
        """Each blob `(digest, size)` as `(digest, frame, data)`: its zstd frame as stored and its
        bytes, checked: no more is read than a frame of `size` bytes can take, and a frame
        declaring another size is refused before it is decompressed. Frames are fetched in
        batches of at most `limits.batch_bytes` (concurrently where the filesystem can), so
        memory holds one batch and one blob."""
        for batch in _batches(list(blobs), self._limits.batch_bytes):
            paths = [self._path(*self._blob_parts(d)) for d, _ in batch]
            ends = [_compress_bound(size) + 1 for _, size in batch]
            frames = storage.fetch(
                self._fs, self.url, f"reading {len(paths)} blobs", paths, [0] * len(paths), ends, retry=self._retry
            )
            for (digest, size), frame in zip(batch, frames):
                if isinstance(frame, FileNotFoundError):
                    raise StorageError(f"{self.url}: missing blob {digest}")
                yield digest, frame, self._checked(digest, size, frame)

    def _checked(self, digest: str, size: int, frame: bytes) -> bytes:
        what = f"{self.url}: blob {digest}"
        if len(frame) > _compress_bound(size):
            raise LimitError(
                f"{what}: stored in more bytes than any zstd frame of the {size:,} bytes its record declares"
            )
        data = _decompress(frame, size, what)
        if digest_bytes(data) != digest:
            raise IntegrityError(f"{what} does not match its digest")
        return data

    # -- writing

    def write_blob(self, digest: str, data: bytes, *, level: int = DEFAULT_LEVEL) -> int:
        frame = _frame(data, level)
        self._put(self._blob_parts(digest), frame)
        return len(frame)

    def _write_frames(self, frames: dict[str, bytes]) -> None:
        """Store blobs' frames (as another store held them, or as `_frame` makes them: checked
        by `read_blobs`), together (concurrently, on object stores)."""
        if not isinstance(self._fs, fsspec.asyn.AsyncFileSystem) or len(frames) < 2:
            for digest, frame in frames.items():
                self._put(self._blob_parts(digest), frame)
            return
        objects = {self._path(*self._blob_parts(d)): frame for d, frame in frames.items()}
        # a retry writes the same bytes again: blobs are named by their content
        storage.call(
            self._fs, self.url, f"cannot write: writing {len(objects)} blobs", "pipe", objects, retry=self._retry
        )

    def _put(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write one object atomically: on local disk through a rename; elsewhere with one
        whole-object upload, which object stores make visible all at once."""
        if isinstance(self._fs, LocalFileSystem):
            with storage.publish(self._url(*parts), self._options) as out:
                out.write(data)
            return
        self._call(parts, "cannot write", "pipe_file", data)

    def tag(self, name: str, ref: str) -> str:
        """Point tag `name` at a pack (a digest or another tag), atomically."""
        _check_tag(name)
        digest = self.resolve(ref)
        self.record(digest)  # the pack must be in the store
        self._put(("tags", name), f"{digest}\n".encode())
        return digest

    def push(
        self,
        pack: Pack | str | os.PathLike[str],
        *,
        tags: Iterable[str] = (),
        level: int = DEFAULT_LEVEL,
        storage_options: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> PushReport:
        """Put a pack in the store: its missing blobs, its record, then its tags."""
        tags = list(tags)
        for name in tags:
            _check_tag(name)
        opened = not isinstance(pack, Pack)
        source = open_pack(pack, storage_options=storage_options) if not isinstance(pack, Pack) else pack
        try:
            record = _record_of(source)
            digest = _record_digest(record)
            missing = self.missing(d for d, _ in record.blobs)
            sent = done = held = 0
            batch: dict[str, bytes] = {}  # frames sent together, at most batch_bytes of them
            for d, data in source.read_blobs(missing):
                batch[d] = _frame(data, level)
                held += len(batch[d])
                if held >= self._limits.batch_bytes or done + len(batch) == len(missing):
                    self._write_frames(batch)
                    sent, done, held, batch = sent + held, done + len(batch), 0, {}
                    if progress is not None:
                        progress(done, len(missing))
            self._put(("packs", f"{digest.split(':', 1)[1]}.json.zst"), _frame(msgspec.json.encode(record), level))
        finally:
            if opened:
                source.close()
        for name in tags:  # the record was just written: no need to read it back
            self._put(("tags", name), f"{digest}\n".encode())
        return PushReport(digest, len(record.blobs), len(missing), sent, tags)

    def pull(
        self,
        ref: str,
        out: str | os.PathLike[str] | None = None,
        *,
        local: Store | None = None,
        storage_options: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> PullReport:
        """Assemble the pack `ref` names (a tag or a digest) at `out` (by default, in the local
        store's `pulled/` folder), fetching into the local store only the blobs it lacks. The
        pack is published at `out` only if its digest is the one `ref` names; on any error,
        what was at `out` stays as it was."""
        local = local or Store(default_local_store())
        digest = self.resolve(ref)
        record = self.record(digest)
        sizes = dict(record.blobs)
        fetched, fetched_bytes = self._fetch_into(local, local.missing(sizes), sizes, progress)
        target = os.fspath(out) if out is not None else local._url("pulled", f"{digest.split(':', 1)[1]}.atpack")
        try:
            _assemble(record, digest, local, target, storage_options)
        except (IntegrityError, LimitError, StorageError):
            # a local blob damaged since it was fetched (a disk error, a crash): fetched again,
            # once, from this store, which its record vouches for; a second failure is final
            damaged = local.damaged(record.blobs)
            if not damaged:
                raise
            log.info("%s: %d damaged blob(s), fetched again from %s", local.url, len(damaged), self.url)
            again, again_bytes = self._fetch_into(local, damaged, sizes, progress)
            fetched, fetched_bytes = fetched + again, fetched_bytes + again_bytes
            _assemble(record, digest, local, target, storage_options)
        return PullReport(digest, target, len(record.blobs), fetched, fetched_bytes)

    def _fetch_into(
        self, local: Store, wanted: list[str], sizes: dict[str, int], progress: Callable[[int, int], None] | None
    ) -> tuple[int, int]:
        """Copy the blobs `wanted` (each checked) from this store into `local`: (blobs, bytes)."""
        fetched = fetched_bytes = 0
        for blob, frame, _ in self.read_blobs((d, sizes[d]) for d in wanted):
            local._write_frames({blob: frame})
            fetched += 1
            fetched_bytes += len(frame)
            if progress is not None:
                progress(fetched, len(wanted))
        return fetched, fetched_bytes

    def damaged(self, blobs: Iterable[tuple[str, int]]) -> list[str]:
        """The blobs of `blobs` (digest, size) this store holds damaged, or lacks: each read alone."""
        bad = []
        for digest, size in blobs:
            try:
                for _ in self.read_blobs([(digest, size)]):
                    pass
            except AtpackError:
                bad.append(digest)
        return bad


def _frame(data: bytes, level: int) -> bytes:
    """`data` as a store keeps it: one zstd frame declaring its size, with a checksum."""
    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True).compress(data)


def _batches(blobs: list[tuple[str, int]], budget: int) -> Iterator[list[tuple[str, int]]]:
    """Consecutive runs of blobs whose frames take at most `budget` bytes (a larger blob alone)."""
    batch: list[tuple[str, int]] = []
    size = 0
    for digest, declared in blobs:
        bound = _compress_bound(declared)
        if batch and size + bound > budget:
            yield batch
            batch, size = [], 0
        batch.append((digest, declared))
        size += bound
    if batch:
        yield batch


def _unzstd(frame: bytes, limit: int, what: str, limits: Limits) -> bytes:
    """The content of a zstd frame that declares a size of at most `limit` bytes, and expands as
    an index may (a record is decoded as one is), checked before anything is allocated."""
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"{what}: not a zstd frame ({e})") from e
    if size < 0:
        raise IntegrityError(f"{what}: a zstd frame that does not declare its size")
    if size > limit:
        raise LimitError(f"{what}: declares {size:,} bytes, over the limit of {limit:,}")
    check_index_expansion(size, len(frame), limits, what)
    if len(frame) > _compress_bound(size):
        raise LimitError(f"{what}: {len(frame):,} bytes, more than any zstd frame of {size:,} bytes")
    return _decompress(frame, size, what)


def _check_record(record: PackRecord, limits: Limits, what: str) -> None:
    """A record's counts, blob sizes and total within `limits`, its blobs sorted and unique (as
    a pack's blob table): checked before any blob is fetched."""
    for name, count, limit in (
        ("blobs", len(record.blobs), limits.max_blobs),
        ("artifacts", len(record.artifacts), limits.max_artifacts),
        ("environments", len(record.environments), limits.max_environments),
    ):
        if count > limit:
            raise LimitError(f"{what}: {count:,} {name}, over the limit of {limit:,}")
    previous, total = "", 0
    for digest, size in record.blobs:
        if digest <= previous:
            raise IntegrityError(f"{what}: blobs not sorted, or one listed twice, at {digest}")
        if size > limits.max_frame_size:
            raise LimitError(
                f"{what}: blob {digest} declares {size:,} bytes, over the limit of {limits.max_frame_size:,}"
            )
        previous, total = digest, total + size
    if total > limits.max_write_bytes:
        raise LimitError(f"{what}: {total:,} bytes of blobs, over the limit of {limits.max_write_bytes:,}")


def _check_tag(name: str) -> None:
    if not _TAG.fullmatch(name):
        raise AtpackError(f"bad tag {name!r}: letters, digits, '.', '_', '-', at most 128, not starting with a sign")


def _record_of(pack: Pack) -> PackRecord:
    m = pack.manifest
    return PackRecord(
        annotations=dict(m.annotations),
        digested_annotations=tuple(m.digested_annotations),
        environments=tuple(m.environments[d] for d in sorted(m.environments)),
        artifacts=tuple(msgspec.Raw(raw) for raw in pack.raw_artifacts),
        blobs=tuple((d, pack.blob_size(d)) for d in pack.blob_digests),
    )


def _record_digest(record: PackRecord) -> str:
    """A record is named by the content digest of the pack it describes."""
    from .artifacts import manifest_digest

    annotations = {k: record.annotations[k] for k in record.digested_annotations if k in record.annotations}
    return manifest_digest((digest_bytes(bytes(a)) for a in record.artifacts), annotations)


def _assemble(
    record: PackRecord, digest: str, local: Store, target: str, storage_options: dict[str, Any] | None
) -> PackInfo:
    """Write the pack `record` describes, from the local store's blobs, at `target`: published
    only if its digest is `digest` (an error inside `create`'s block publishes nothing)."""
    artifacts = [
        decode_artifact(bytes(raw), f"{local.url}: record artifact #{i}") for i, raw in enumerate(record.artifacts)
    ]
    hints = {ref: a.blob_hint(ref) for a in artifacts if isinstance(a, Artifact) for ref in a.blob_refs()}
    with create(target, storage_options=storage_options) as writer:
        for env in record.environments:
            writer.add_environment(env)
        for artifact in artifacts:
            writer.add(artifact)
        for blob, _, data in local.read_blobs(record.blobs):
            writer.add_blob(data, hint=hints.get(blob, ""))
        for key, value in record.annotations.items():
            writer.annotate(key, value, digested=key in record.digested_annotations)
        info = writer.finish()
        if info.digest != digest:
            raise IntegrityError(
                f"{local.url}: the pack assembled from record {digest} is {info.digest}: not published"
            )
    return info
