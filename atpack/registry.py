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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import zstandard
from fsspec.implementations.local import LocalFileSystem

from . import store
from .artifacts import Artifact, Environment
from .digest import digest_bytes
from .errors import AtpackError, IntegrityError, StorageError
from .folders import atpack_cache_dir
from .pack import DEFAULT_LEVEL, Pack, PackInfo, create, decode_artifact, open_pack

__all__ = ["PackRecord", "PullReport", "PushReport", "Store", "default_local_store"]

log = logging.getLogger(__name__)

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_BLOB = 4 << 30


class PackRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A pack as a store keeps it: everything but the bytes of its blobs."""

    annotations: dict[str, str] = {}
    digested_annotations: tuple[str, ...] = ()
    environments: tuple[Environment, ...] = ()
    artifacts: tuple[msgspec.Raw, ...] = ()
    blobs: tuple[tuple[str, int], ...] = ()


@dataclasses.dataclass
class PushReport:
    digest: str
    blobs: int
    blobs_sent: int
    bytes_sent: int
    tags: list[str]

    def format(self) -> str:
        tags = f", tagged {', '.join(self.tags)}" if self.tags else ""
        return (
            f"pushed {self.digest}: {self.blobs_sent} of {self.blobs} blobs sent "
            f"({self.bytes_sent:,} bytes; the store had the rest){tags}"
        )


@dataclasses.dataclass
class PullReport:
    digest: str
    path: str
    blobs: int
    blobs_fetched: int
    bytes_fetched: int

    def format(self) -> str:
        return (
            f"pulled {self.digest} into {self.path}: {self.blobs_fetched} of {self.blobs} blobs fetched "
            f"({self.bytes_fetched:,} bytes; the local store had the rest)"
        )


def default_local_store() -> str:
    """The node-local store pulls go through: ``$ATPACK_CACHE_DIR/store``."""
    return os.path.join(atpack_cache_dir(), "store")


class Store:
    """A pack store at `url` (any fsspec URL; `storage_options` passed through)."""

    def __init__(self, url: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> None:
        self.url = os.fspath(url).rstrip("/")
        self._options = storage_options
        self._fs, self._root = store.resolve(self.url, storage_options)

    # -- names

    def _path(self, *parts: str) -> str:
        return "/".join([self._root.rstrip("/"), *parts])

    def _url(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    @staticmethod
    def _blob_parts(digest: str) -> tuple[str, str, str]:
        hex_ = digest.split(":", 1)[1]
        return "blobs", hex_[:2], hex_

    # -- reading

    def resolve(self, ref: str) -> str:
        """The pack digest a tag names (a digest is returned as it is)."""
        if _DIGEST.match(ref):
            return ref
        _check_tag(ref)
        try:
            text = str(self._fs.cat_file(self._path("tags", ref)).decode()).strip()
        except FileNotFoundError:
            raise StorageError(f"{self.url}: no tag {ref!r}") from None
        except Exception as e:
            raise StorageError(f"{self.url}: reading tag {ref!r}: {type(e).__name__}: {e}") from e
        if not _DIGEST.match(text):
            raise IntegrityError(f"{self.url}: tag {ref!r} does not hold a pack digest")
        return text

    def record(self, digest: str) -> PackRecord:
        """The record of a pack, checked against its digest."""
        try:
            raw = _unzstd(self._fs.cat_file(self._path("packs", f"{digest.split(':', 1)[1]}.json.zst")), 1 << 30)
        except FileNotFoundError:
            raise StorageError(f"{self.url}: no pack {digest}") from None
        except AtpackError:
            raise
        except Exception as e:
            raise StorageError(f"{self.url}: reading pack {digest}: {type(e).__name__}: {e}") from e
        try:
            record = msgspec.json.decode(raw, type=PackRecord)
        except msgspec.DecodeError as e:
            raise IntegrityError(f"{self.url}: pack record {digest}: {e}") from e
        if _record_digest(record) != digest:
            raise IntegrityError(f"{self.url}: pack record {digest} does not match its digest")
        return record

    def tags(self) -> dict[str, str]:
        """Every tag and the digest it names."""
        try:
            names = [os.path.basename(p) for p in self._fs.ls(self._path("tags"), detail=False)]
        except FileNotFoundError:
            return {}
        return {name: self.resolve(name) for name in sorted(names) if _TAG.match(name)}

    def has_blob(self, digest: str) -> bool:
        return bool(self._fs.exists(self._path(*self._blob_parts(digest))))

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The blobs of `digests` the store lacks (one listing, not one request per blob)."""
        try:
            present = {p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.find(self._path("blobs"))}
        except FileNotFoundError:
            present = set()
        return [d for d in digests if d.split(":", 1)[1] not in present]

    def read_blob(self, digest: str) -> bytes:
        """A blob's bytes, checked against its digest."""
        return next(iter(self.read_blobs([digest]).values()))

    def read_blobs(self, digests: list[str]) -> dict[str, bytes]:
        """Blobs' bytes (fetched concurrently where the filesystem can), checked against their
        digests."""
        paths = [self._path(*self._blob_parts(d)) for d in digests]
        try:
            frames = self._fs.cat(paths, on_error="raise") if paths else {}
        except FileNotFoundError as e:
            raise StorageError(f"{self.url}: missing blob ({e})") from None
        except Exception as e:
            raise StorageError(f"{self.url}: reading {len(paths)} blobs: {type(e).__name__}: {e}") from e
        out = {}
        for digest, path in zip(digests, paths):
            data = _unzstd(frames[path], MAX_BLOB, f"{self.url}: blob {digest}")
            if digest_bytes(data) != digest:
                raise IntegrityError(f"{self.url}: blob {digest} does not match its digest")
            out[digest] = data
        return out

    # -- writing

    def write_blob(self, digest: str, data: bytes, *, level: int = DEFAULT_LEVEL) -> int:
        frame = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True).compress(data)
        self._put(self._blob_parts(digest), frame)
        return len(frame)

    def _put(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write one object atomically: on local disk through a rename; elsewhere with one
        whole-object upload, which object stores make visible all at once."""
        if isinstance(self._fs, LocalFileSystem):
            with store.publish(self._url(*parts), self._options) as out:
                out.write(data)
            return
        try:
            self._fs.pipe_file(self._path(*parts), data)
        except Exception as e:
            raise StorageError(f"{self._url(*parts)}: cannot write: {type(e).__name__}: {e}") from e

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
            sent = 0
            for done, (d, data) in enumerate(source.read_blobs(missing), 1):
                sent += self.write_blob(d, data, level=level)
                if progress is not None:
                    progress(done, len(missing))
            compressed = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)
            self._put(
                ("packs", f"{digest.split(':', 1)[1]}.json.zst"), compressed.compress(msgspec.json.encode(record))
            )
        finally:
            if opened:
                source.close()
        for name in tags:
            self.tag(name, digest)
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
        store's `pulled/` folder), fetching into the local store only the blobs it lacks."""
        local = local or Store(default_local_store())
        digest = self.resolve(ref)
        record = self.record(digest)
        fetched = fetched_bytes = 0
        wanted = local.missing(d for d, _ in record.blobs)
        for start in range(0, len(wanted), 64):
            for blob, data in self.read_blobs(wanted[start : start + 64]).items():
                fetched += 1
                fetched_bytes += local.write_blob(blob, data)
            if progress is not None:
                progress(fetched, len(wanted))
        target = os.fspath(out) if out is not None else local._url("pulled", f"{digest.split(':', 1)[1]}.atpack")
        info = _assemble(record, local, target, storage_options)
        if info.digest != digest:
            raise IntegrityError(f"{self.url}: assembled pack {info.digest} is not {digest}")
        return PullReport(digest, target, len(record.blobs), fetched, fetched_bytes)


def _unzstd(frame: bytes, limit: int, what: str = "record") -> bytes:
    try:
        return zstandard.ZstdDecompressor().decompress(frame, max_output_size=limit)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"{what}: {e}") from e


def _check_tag(name: str) -> None:
    if not _TAG.match(name):
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


def _assemble(record: PackRecord, local: Store, target: str, storage_options: dict[str, Any] | None) -> PackInfo:
    artifacts = [
        decode_artifact(bytes(raw), f"{local.url}: record artifact #{i}") for i, raw in enumerate(record.artifacts)
    ]
    hints = {ref: a.blob_hint(ref) for a in artifacts if isinstance(a, Artifact) for ref in a.blob_refs()}
    with create(target, storage_options=storage_options) as writer:
        for env in record.environments:
            writer.add_environment(env)
        for artifact in artifacts:
            writer.add(artifact)
        for digest, size in record.blobs:
            data = local.read_blob(digest)
            if len(data) != size:
                raise IntegrityError(f"{local.url}: blob {digest} has {len(data)} bytes, the record says {size}")
            writer.add_blob(data, hint=hints.get(digest, ""))
        for key, value in record.annotations.items():
            writer.annotate(key, value, digested=key in record.digested_annotations)
    assert writer.info is not None
    return writer.info
