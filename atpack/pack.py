"""The pack container, format 1: writer, lazy reader, hard limits.

Layout (`spec/FORMAT.md` has the byte-level definition)::

    header (16 bytes) | frame* | index frame | footer (72 bytes)

Blobs are zstd frames: blobs larger than the group size get a frame each, smaller ones are
packed into shared frames. The index (artifacts, environments, annotations, frame and blob
tables) is one zstd frame of canonical JSON; the footer locates it, so a remote reader gets
everything but the blobs with one ranged read of the file's tail.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import logging
import os
import re
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Annotated, Any, Protocol, Union

import msgspec
import zstandard

from . import kinds, settings, storage
from .artifacts import (
    AnyArtifact,
    Artifact,
    Environment,
    Manifest,
    UnknownArtifact,
    manifest_digest,
)
from .digest import Digest, canonical, digest_bytes
from .errors import AtpackError, BlobNotFoundError, FormatError, IntegrityError, LimitError

__all__ = [
    "SILENT",
    "Progress",
    "CREATED",
    "created_now",
    "DEFAULT_LIMITS",
    "EXPANSION_ALLOWANCE",
    "INDEX_ALLOWANCE",
    "FORMAT_VERSION",
    "Limits",
    "Pack",
    "PackInfo",
    "PackWriter",
    "create",
    "open_pack",
]

log = logging.getLogger(__name__)

MAGIC = b"\x89ATPACK\n"
FORMAT_VERSION = (1, 2)
_HEADER = struct.Struct("<8sHHI")  # magic, major, minor, flags
_FOOTER = struct.Struct("<QQQ32sHHI8s")  # index offset, length, size, sha256, major, minor, flags, magic
HEADER_SIZE = _HEADER.size
FOOTER_SIZE = _FOOTER.size
TAIL_READ = 64 * 1024
"""How much of the tail a reader fetches first: the footer and, usually, the whole index."""

MAX_ZSTD_RATIO = 1 << 15
"""No zstd frame expands more than this: a block holds at most 128 KiB and takes at least 4 bytes."""
EXPANSION_ALLOWANCE = 16 << 20
"""Decompressed bytes any pack may declare, whatever its size (`Limits.max_expansion`)."""
INDEX_ALLOWANCE = 1 << 20
"""Bytes any index may decompress to, whatever its compressed length (`Limits.max_index_expansion`)."""


class Progress(Protocol):
    """Follows work done in steps (blobs read, frames checked). An fsspec ``Callback`` (such as
    ``TqdmCallback``) is one; atpack does not import fsspec for it."""

    def set_size(self, size: int) -> None: ...

    def relative_update(self, inc: int = 1) -> None: ...


class _Silent:
    def set_size(self, size: int) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        pass


SILENT: Progress = _Silent()
"""Progress that nobody follows."""

CREATED = "io.atpack.created"
"""Annotation: when a pack was made (ISO 8601, UTC); ``SOURCE_DATE_EPOCH`` overrides the clock."""


def created_now() -> str:
    """The value of `CREATED` for a pack made now (or at ``$SOURCE_DATE_EPOCH``, for reproducible builds)."""
    epoch = settings.source_date_epoch()
    now = (
        datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
        if epoch is not None
        else datetime.datetime.now(datetime.timezone.utc)
    )
    return now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


DEFAULT_LEVEL = 9
DEFAULT_GROUP_SIZE = 1 << 26

_ANNOTATION_PATTERN = r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+([._/][A-Za-z0-9][A-Za-z0-9-]*)*(?!\n)$"
_ANNOTATION_KEY = re.compile(_ANNOTATION_PATTERN)
AnnotationKey = Annotated[
    str,
    msgspec.Meta(pattern=_ANNOTATION_PATTERN, max_length=256, description="reverse-DNS key, e.g. org.example.model"),
]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Hard limits enforced before allocating or writing anything a pack (or a store's record of
    one) declares."""

    max_index_size: int = 256 << 20
    max_frame_size: int = 4 << 30
    """Also the largest blob a pull fetches: a blob that large becomes one frame of the pack."""
    max_frames: int = 1 << 20
    max_blobs: int = 1 << 22
    max_artifacts: int = 1 << 22
    max_environments: int = 1 << 12
    max_expansion: int = 1024
    """Bytes a pack may declare decompressed (its index and frames together) per byte of its own,
    beyond the first `EXPANSION_ALLOWANCE`: packs of real caches expand 1x to 50x (spec, §10), so
    a few KiB declaring gigabytes is refused before any command decompresses a byte of it."""
    max_index_expansion: int = 32
    """Bytes an index may decompress to per compressed byte, beyond `INDEX_ALLOWANCE`: real
    indexes expand 2x to 5x (digests and timings do not compress), while a decoded index takes
    up to 17 bytes of memory a byte; so a pack of 250 KB declaring a 200 MiB index of repeated
    records (gigabytes once decoded) is refused before it is decompressed, and the writer
    refuses to write an index over it."""
    max_write_bytes: int = 64 << 30
    """Bytes one populate (all the packs of a model folder together) or one pull may write."""
    max_write_files: int = 2_000_000
    """Files one populate (all the packs of a model folder together) may write."""
    max_packs: int = 256
    """Packs in one model folder."""
    batch_bytes: int = 64 << 20
    """Bytes held per batch of blobs fetched at once (Megacache replay, pull)."""


DEFAULT_LIMITS = Limits()


def check_index_expansion(size: int, length: int, limits: Limits, what: str) -> None:
    """Refuse (`LimitError`) an index, or a store's record of one, of `size` bytes held in
    `length` compressed: over `Limits.max_index_expansion` times past `INDEX_ALLOWANCE`."""
    if size > max(INDEX_ALLOWANCE, length * limits.max_index_expansion):
        raise LimitError(
            f"{what}: {size:,} bytes decompressed from {length:,} (over {limits.max_index_expansion}x, "
            f"the limit past {INDEX_ALLOWANCE:,} bytes)"
        )


class FrameEntry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A zstd frame: where it lies, its decompressed size, sha256 of its compressed bytes."""

    offset: Annotated[int, msgspec.Meta(ge=0)]
    length: Annotated[int, msgspec.Meta(ge=1)]
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}(?!\n)$")]


class BlobEntry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A blob: its digest, the frame holding it, and its place in the decompressed frame."""

    digest: Digest
    frame: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]
    size: Annotated[int, msgspec.Meta(ge=0)]


class Index(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The index of a pack, format 1 (the schema in `spec/schema/` is generated from it)."""

    annotations: dict[AnnotationKey, str] = {}
    digested_annotations: tuple[AnnotationKey, ...] = ()
    environments: tuple[Environment, ...] = ()
    artifacts: tuple[AnyArtifact, ...] = ()
    """Format 1.0's kinds; a pack is read with every kind known (`atpack.kinds`)."""
    frames: tuple[FrameEntry, ...] = ()
    blobs: tuple[BlobEntry, ...] = ()


class _IndexOnDisk(msgspec.Struct, frozen=True, kw_only=True):
    """`Index` as read: artifacts stay raw until their kind is known."""

    annotations: dict[AnnotationKey, str] = {}
    digested_annotations: tuple[AnnotationKey, ...] = ()
    environments: tuple[Environment, ...] = ()
    artifacts: tuple[msgspec.Raw, ...] = ()
    frames: tuple[FrameEntry, ...] = ()
    blobs: tuple[BlobEntry, ...] = ()


class _KindProbe(msgspec.Struct):
    kind: str
    env: Digest


_index_decoder = msgspec.json.Decoder(_IndexOnDisk)


class _IndexTables(msgspec.Struct, frozen=True):
    """The index's tables as raw JSON text, so that they are counted before anything is built
    (a few bytes per element, like `{}`, could otherwise become gigabytes of objects)."""

    environments: msgspec.Raw = msgspec.Raw(b"[]")
    artifacts: msgspec.Raw = msgspec.Raw(b"[]")
    frames: msgspec.Raw = msgspec.Raw(b"[]")
    blobs: msgspec.Raw = msgspec.Raw(b"[]")


_tables_decoder = msgspec.json.Decoder(_IndexTables)
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[][{},]')  # a string (skipped whole), a bracket, a comma
_EMPTY_ARRAY = re.compile(rb"\[\s*\]")
_OPEN, _CLOSE, _COMMA = frozenset(b"[{"), frozenset(b"]}"), ord(",")


def _elements_over(text: bytes, limit: int) -> int:
    """0 if the JSON array `text` has at most `limit` elements, else a count above `limit`,
    found without building the elements or reading past the one after the limit."""
    if text.count(b",") < limit:  # n elements take n - 1 commas
        return 0
    depth = commas = 0
    for token in _JSON_TOKEN.finditer(text):
        c = text[token.start()]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == _COMMA and depth == 1:
            commas += 1
            if commas >= limit:
                return commas + 1
    count = 0 if _EMPTY_ARRAY.fullmatch(text) else commas + 1
    return count if count > limit else 0


_probe_decoder = msgspec.json.Decoder(_KindProbe)


@dataclasses.dataclass(frozen=True)
class PackInfo:
    """What a writer wrote."""

    digest: str
    size: int
    artifacts: int
    blobs: int
    frames: int
    blob_bytes: int


# --------------------------------------------------------------------------- writer


@dataclasses.dataclass
class _Spooled:
    pos: int
    size: int
    hint: str


class PackWriter:
    """Writes one pack to a binary stream, sequentially (no seeks: the stream may be an upload).

    Blobs are spooled to a temporary file as they are added, so memory stays bounded by the
    largest blob; `finish` writes everything in canonical order, so the same content gives
    the same bytes whatever order it was added in.
    """

    def __init__(self, out: storage.Sink, *, level: int = DEFAULT_LEVEL, group_size: int = DEFAULT_GROUP_SIZE) -> None:
        if not 1 <= level <= 22:
            raise ValueError(f"zstd level must be 1..22, not {level}")
        if group_size < 1:
            raise ValueError("group_size must be positive")
        self._out = out
        self._group_size = group_size
        self._level = level
        self._zstd = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)
        self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="atpack-spool-")  # noqa: SIM115 (closed by finish/abort)
        self._spool_end = 0
        self._blobs: dict[str, _Spooled] = {}
        self._artifacts: dict[str, bytes] = {}
        self._questions: dict[tuple[str, str, str], str] = {}
        self._blob_refs: dict[str, list[str]] = {}
        self._artifact_envs: dict[str, str] = {}
        self._environments: dict[str, Environment] = {}
        self._annotations: dict[str, str] = {}
        self._digested: set[str] = set()
        self._written = 0
        self.info: PackInfo | None = None

    # -- adding content

    def add_blob(self, data: bytes | bytearray | memoryview, *, hint: str = "") -> str:
        """Store `data` once and return its digest. `hint` (say, a file suffix) groups
        similar small blobs in the same frames, which compresses them better."""
        digest = digest_bytes(data)
        known = self._blobs.get(digest)
        if known is not None:
            known.hint = min(known.hint, hint)
            return digest
        self._spool.seek(self._spool_end)
        self._spool.write(data)
        self._blobs[digest] = _Spooled(self._spool_end, len(data), hint)
        self._spool_end += len(data)
        return digest

    def _compressor(self, size: int) -> zstandard.ZstdCompressor:
        """For a frame of `size` bytes: long-distance matching over a window as large as the frame
        (up to 128 MiB, zstd's default decoder limit), which finds the repeats far apart: a
        pickled graph holds a copy of every candidate kernel, whose files the pack holds too."""
        window_log = max(10, min(27, (size - 1).bit_length()))
        params = zstandard.ZstdCompressionParameters.from_level(
            self._level, enable_ldm=True, window_log=window_log, write_content_size=True, write_checksum=True
        )
        return zstandard.ZstdCompressor(compression_params=params)

    def add_environment(self, environment: Environment) -> str:
        """Record an environment and return the digest artifacts refer to it by."""
        digest = environment.digest
        self._environments[digest] = environment
        return digest

    def add(self, artifact: Artifact | UnknownArtifact) -> str:
        """Add an artifact; its environment and blobs may be added before or after."""
        if isinstance(artifact, UnknownArtifact):
            raw = artifact.raw
            _check_canonical(artifact, raw, f"artifact of kind {artifact.kind}")
        elif isinstance(artifact, Artifact):
            raw = canonical(artifact)
            # never write what a reader refuses (a struct built in code skips the schema's checks)
            decode_artifact(raw, f"{artifact.kind} {_shown_key(artifact.key)}")
        else:
            raise TypeError(f"not an artifact: {type(artifact).__name__}")
        digest = digest_bytes(raw)
        if digest in self._artifacts:
            return digest
        question = (artifact.kind, artifact.env, artifact.key)
        other = self._questions.get(question)
        if other is not None:
            raise FormatError(
                f"two different {artifact.kind} artifacts for {artifact.key!r} in one environment "
                f"({other} and {digest}): merge them first"
            )
        self._questions[question] = digest
        self._artifacts[digest] = raw
        self._artifact_envs[digest] = artifact.env
        self._blob_refs[digest] = list(artifact.blob_refs())
        return digest

    def annotate(self, key: str, value: str, *, digested: bool = False) -> None:
        """Set an annotation. Only `digested` ones enter the pack's content digest."""
        if not _ANNOTATION_KEY.match(key):
            raise ValueError(f"annotation key {key!r} is not reverse-DNS (like org.example.model)")
        if not isinstance(value, str):
            raise TypeError(f"annotation {key!r}: value must be a string")
        self._annotations[key] = value
        if digested:
            self._digested.add(key)
        else:
            self._digested.discard(key)

    def copy_from(self, pack: Pack, artifacts: Iterable[Artifact | UnknownArtifact]) -> list[str]:
        """Add artifacts of another pack, with their environments and the blobs they reference
        (for a kind this version does not know: the digests that appear in it). Each frame of
        `pack` is read once."""
        artifacts = list(artifacts)
        hints: dict[str, str] = {}
        for artifact in artifacts:
            env = pack.manifest.environments.get(artifact.env)
            if env is not None:
                self.add_environment(env)
            for ref in artifact.blob_refs():
                if ref not in self._blobs and pack.has_blob(ref):
                    hint = artifact.blob_hint(ref) if isinstance(artifact, Artifact) else ""
                    hints[ref] = min(hints.get(ref, hint), hint)
        for digest, data in pack.read_blobs(hints):
            self.add_blob(data, hint=hints[digest])
        return [self.add(a) for a in artifacts]

    # -- writing

    def finish(self) -> PackInfo:
        """Write the pack. The stream is left open."""
        if self.info is not None:
            return self.info
        self._check_references()
        self._write(_HEADER.pack(MAGIC, *FORMAT_VERSION, 0))
        frames, blobs = self._write_frames()
        index = self._index_bytes(frames, blobs)
        index_offset = self._written
        compressed = self._zstd.compress(index)
        check_index_expansion(len(index), len(compressed), DEFAULT_LIMITS, "the index (readers would refuse it)")
        self._write(compressed)
        self._write(
            _FOOTER.pack(
                index_offset,
                len(compressed),
                len(index),
                hashlib.sha256(compressed).digest(),
                *FORMAT_VERSION,
                0,
                MAGIC,
            )
        )
        self._spool.close()
        self.info = PackInfo(
            digest=self._manifest_digest(),
            size=self._written,
            artifacts=len(self._artifacts),
            blobs=len(blobs),
            frames=len(frames),
            blob_bytes=sum(b.size for b in self._blobs.values()),
        )
        return self.info

    def abort(self) -> None:
        """Drop everything (the spool file); nothing more is written."""
        self._spool.close()

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def _check_references(self) -> None:
        for digest, raw in self._artifacts.items():
            probe = _probe_decoder.decode(raw)
            if probe.env not in self._environments:
                raise FormatError(f"artifact {digest} refers to environment {probe.env}, which was never added")
            if not kinds.known(probe.kind):
                continue  # digest-like strings in unknown kinds are kept only if they are blobs
            for ref in self._blob_refs[digest]:
                if ref not in self._blobs:
                    raise FormatError(f"artifact {digest} refers to blob {ref}, which was never added")

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self._written += len(data)

    def _write_frames(self) -> tuple[list[FrameEntry], list[BlobEntry]]:
        frames: list[FrameEntry] = []
        blobs: list[BlobEntry] = []
        for group in self._groups():
            offset = 0
            for digest, spooled in group:
                blobs.append(BlobEntry(digest, len(frames), offset, spooled.size))
                offset += spooled.size
            frames.append(self._write_frame(group, offset))
        blobs.sort(key=lambda b: b.digest)
        return frames, blobs

    def _groups(self) -> Iterator[list[tuple[str, _Spooled]]]:
        """The blobs cut into frames: an environment's blobs apart from another's (a machine
        reads its own environment's frames), in `(hint, digest)` order, each frame at most the
        group size (a larger blob alone)."""
        envs = self._blob_environments()
        group: list[tuple[str, _Spooled]] = []
        size, env = 0, ""
        for digest, spooled in sorted(self._blobs.items(), key=lambda kv: (envs.get(kv[0], ""), kv[1].hint, kv[0])):
            if group and (size + spooled.size > self._group_size or envs.get(digest, "") != env):
                yield group
                group, size = [], 0
            group.append((digest, spooled))
            size += spooled.size
            env = envs.get(digest, "")
        if group:
            yield group

    def _blob_environments(self) -> dict[str, str]:
        """Each blob's environment: the least digest among those of the artifacts that refer to it."""
        envs: dict[str, str] = {}
        for digest, env in self._artifact_envs.items():
            for ref in self._blob_refs[digest]:
                envs[ref] = min(envs.get(ref, env), env)
        return envs

    def _write_frame(self, group: list[tuple[str, _Spooled]], size: int) -> FrameEntry:
        """Compress the group's blobs into one frame, streamed from the spool."""
        offset, sha256 = self._written, hashlib.sha256()
        stream = self._compressor(size).compressobj(size=size)

        def write(chunk: bytes) -> None:
            sha256.update(chunk)
            self._write(chunk)

        for _, spooled in group:
            self._spool.seek(spooled.pos)
            write(stream.compress(self._spool.read(spooled.size)))
        write(stream.flush())
        return FrameEntry(offset, self._written - offset, size, sha256.hexdigest())

    def _index_bytes(self, frames: list[FrameEntry], blobs: list[BlobEntry]) -> bytes:
        used_envs = set(self._artifact_envs.values())
        environments = sorted((d, e) for d, e in self._environments.items() if d in used_envs)
        artifacts = [msgspec.Raw(self._artifacts[d]) for d in sorted(self._artifacts)]
        index = _IndexOnDisk(
            annotations=self._annotations,
            digested_annotations=tuple(sorted(self._digested)),
            environments=tuple(e for _, e in environments),
            artifacts=tuple(artifacts),
            frames=tuple(frames),
            blobs=tuple(blobs),
        )
        return canonical(index)

    def _manifest_digest(self) -> str:
        return manifest_digest(self._artifacts, {k: self._annotations[k] for k in self._digested})


# --------------------------------------------------------------------------- reader


class Pack:
    """A pack opened for reading. Opening reads the index only; blobs are fetched on demand
    (one ranged read per frame) and every digest is checked before anything is returned."""

    def __init__(self, source: storage.RangeSource, *, limits: Limits = DEFAULT_LIMITS, frame_cache: int = 4) -> None:
        self._source = source
        self._limits = limits
        self._frame_cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._frame_cache_lock = threading.Lock()
        self._frame_cache_size = frame_cache
        self.name = source.name
        self.size = source.size
        self.format_version: tuple[int, int] = FORMAT_VERSION
        self.bytes_read = 0
        index, text = self._read_index()
        self._frames = index.frames
        self._blobs = {b.digest: b for b in index.blobs}
        self._raw_artifacts = [bytes(raw) for raw in index.artifacts]
        self.manifest = self._manifest(index, _decode_artifacts(text, self._raw_artifacts, self.name))

    # -- public

    @property
    def artifacts(self) -> tuple[Artifact | UnknownArtifact, ...]:
        return self.manifest.artifacts

    @property
    def digest(self) -> str:
        """The content digest (artifacts and digested annotations), independent of the bytes."""
        return self.manifest.digest

    @property
    def blob_count(self) -> int:
        return len(self._blobs)

    @property
    def blob_digests(self) -> list[str]:
        """Every blob's digest, sorted."""
        return sorted(self._blobs)

    @property
    def raw_artifacts(self) -> list[bytes]:
        """Each artifact's canonical JSON text, as stored (in `artifacts` order)."""
        return self._raw_artifacts

    def has_blob(self, digest: str) -> bool:
        return digest in self._blobs

    def blob_size(self, digest: str) -> int:
        return self._entry(digest).size

    def read_blob(self, digest: str) -> bytes:
        """The bytes of one blob, verified."""
        entry = self._entry(digest)
        return self._slice(entry, self._frame(entry.frame))

    def read_blobs(
        self,
        digests: Iterable[str],
        *,
        batch_bytes: int = 64 << 20,
        failed: Callable[[list[str], AtpackError], None] | None = None,
    ) -> Iterator[tuple[str, bytes]]:
        """Blobs in storage order, each frame fetched once. Frames are fetched in batches of up
        to `batch_bytes` compressed bytes (concurrently, on remote stores) and decompressed one
        at a time, so memory holds one batch and one decompressed frame.

        A frame or blob that does not verify raises, unless `failed` is given: then
        `failed(digests, error)` is told which blobs could not be read and why, and the others
        are read on (a damaged frame costs its own blobs only)."""
        by_frame: dict[int, list[BlobEntry]] = collections.defaultdict(list)
        for e in sorted({self._entry(d) for d in digests}, key=lambda e: (e.frame, e.offset)):
            by_frame[e.frame].append(e)
        for batch in self._batches(list(by_frame), batch_bytes):
            for index, payload in zip(batch, self._fetch(batch)):
                try:
                    data = self._decode_frame(index, payload)
                except AtpackError as error:
                    if failed is None:
                        raise
                    failed([e.digest for e in by_frame[index]], error)
                    continue
                for e in by_frame[index]:
                    try:
                        blob = self._slice(e, data)
                    except AtpackError as error:
                        if failed is None:
                            raise
                        failed([e.digest], error)
                        continue
                    yield e.digest, blob

    def _batches(self, frames: list[int], budget: int) -> Iterator[list[int]]:
        batch: list[int] = []
        size = 0
        for index in frames:
            length = self._frames[index].length
            if batch and size + length > budget:
                yield batch
                batch, size = [], 0
            batch.append(index)
            size += length
        if batch:
            yield batch

    def verify(self, *, callback: Progress = SILENT) -> None:
        """Check every byte: header, each frame's digest and checksum, each blob's digest.
        Raises on the first bad entry, naming it. `callback` (a `Progress`: an fsspec callback,
        such as `TqdmCallback`) follows the frames."""
        header = self._source.read(0, HEADER_SIZE)
        _check_header(header, self.format_version)
        previous = ""
        for i, (artifact, raw) in enumerate(zip(self.artifacts, self._raw_artifacts)):
            _check_canonical(artifact, raw, f"{self.name}: artifact #{i}")
            digest = digest_bytes(raw)
            if digest <= previous:
                raise FormatError(f"{self.name}: artifact #{i} ({digest}) is out of order or a duplicate")
            previous = digest
        by_frame: dict[int, list[BlobEntry]] = collections.defaultdict(list)
        for e in self._blobs.values():
            by_frame[e.frame].append(e)
        callback.set_size(len(self._frames))
        for index in range(len(self._frames)):
            data = self._load_frame(index)
            for e in by_frame[index]:
                self._slice(e, data)
            callback.relative_update(1)

    def close(self) -> None:
        self._frame_cache.clear()
        self._source.close()

    def __enter__(self) -> Pack:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Pack {self.name} {len(self.artifacts)} artifacts, {len(self._blobs)} blobs>"

    # -- reading the index

    def _read_index(self) -> tuple[_IndexOnDisk, bytes]:
        size = self.size
        if size < HEADER_SIZE + FOOTER_SIZE:
            raise FormatError(f"{self.name}: {self._not_a_pack()}")
        tail_len = min(size, TAIL_READ)
        tail = self._read_exact(size - tail_len, tail_len)
        offset, length, index_size, index_sha, major, minor, flags, magic = _FOOTER.unpack(tail[-FOOTER_SIZE:])
        if magic != MAGIC:
            raise FormatError(f"{self.name}: {self._not_a_pack()}")
        if major != FORMAT_VERSION[0]:
            raise FormatError(
                f"{self.name}: pack format {major}.{minor}; this atpack reads format {FORMAT_VERSION[0]}.x"
            )
        if flags != 0:
            raise FormatError(f"{self.name}: footer flags {flags:#x} are reserved and must be 0")
        self.format_version = (major, minor)
        if offset < HEADER_SIZE or offset + length + FOOTER_SIZE != size:
            raise LimitError(f"{self.name}: index at {offset}+{length} does not end at the footer ({size} bytes)")
        if index_size > self._limits.max_index_size:
            raise LimitError(
                f"{self.name}: index of {index_size} bytes exceeds the limit of {self._limits.max_index_size}"
            )
        if index_size > length * MAX_ZSTD_RATIO or length > _compress_bound(index_size):
            raise LimitError(f"{self.name}: no zstd frame of {length} bytes holds an index of {index_size} bytes")
        self._check_expansion(index_size, "an index")
        check_index_expansion(index_size, length, self._limits, f"{self.name}: index")
        if size <= tail_len:
            _check_header(tail[:HEADER_SIZE], self.format_version)
        start = size - tail_len
        if offset >= start:
            compressed = tail[offset - start : offset - start + length]
        else:
            compressed = self._read_exact(offset, start - offset) + tail[: offset + length - start]
        if hashlib.sha256(compressed).digest() != index_sha:
            raise IntegrityError(f"{self.name}: index does not match its sha256 in the footer")
        raw = _decompress(compressed, index_size, f"{self.name}: index")
        try:
            self._count_tables(_tables_decoder.decode(raw))
            index = _index_decoder.decode(raw)
        except _DECODE_ERRORS as e:
            raise FormatError(f"{self.name}: index: {_why_undecodable(e, raw)}") from e
        self._check_tables(index, offset)
        self._check_expansion(index_size + sum(f.size for f in index.frames), "an index and frames")
        return index, raw

    def _check_expansion(self, declared: int, what: str) -> None:
        """Refuse a pack that declares more decompressed bytes than `Limits.max_expansion` allows."""
        budget = max(EXPANSION_ALLOWANCE, self.size * self._limits.max_expansion)
        if declared > budget:
            raise LimitError(
                f"{self.name}: {what} of {declared:,} bytes decompressed from a pack of {self.size:,} bytes "
                f"(over {self._limits.max_expansion}x, the limit of {budget:,})"
            )

    def _not_a_pack(self) -> str:
        """Why a file that does not end with the footer is not a pack: one cut short (or with
        bytes after its end), or something else."""
        what = f"{self.size:,} bytes, no footer magic at the end"
        header = self._source.read(0, min(self.size, len(MAGIC)))
        if self.size and MAGIC.startswith(header):
            return (
                f"truncated, or followed by other bytes: it starts as an atpack file but does not end as one ({what})"
            )
        return f"not an atpack file ({what})"

    def _count_tables(self, tables: _IndexTables) -> None:
        lim = self._limits
        for what, text, limit in (
            ("frames", tables.frames, lim.max_frames),
            ("blobs", tables.blobs, lim.max_blobs),
            ("artifacts", tables.artifacts, lim.max_artifacts),
            ("environments", tables.environments, lim.max_environments),
        ):
            body = bytes(text)
            if body.startswith(b"[") and (count := _elements_over(body, limit)):
                raise LimitError(f"{self.name}: at least {count} {what} exceeds the limit of {limit}")

    def _check_tables(self, index: _IndexOnDisk, index_offset: int) -> None:
        lim, name = self._limits, self.name
        for what, count, limit in (
            ("frames", len(index.frames), lim.max_frames),
            ("blobs", len(index.blobs), lim.max_blobs),
            ("artifacts", len(index.artifacts), lim.max_artifacts),
            ("environments", len(index.environments), lim.max_environments),
        ):
            if count > limit:
                raise LimitError(f"{name}: {count} {what} exceeds the limit of {limit}")
        expected = HEADER_SIZE
        for i, f in enumerate(index.frames):
            if f.offset != expected:
                raise LimitError(
                    f"{name}: frame {i} starts at {f.offset}, expected {expected} (frames must be contiguous)"
                )
            if f.size > lim.max_frame_size:
                raise LimitError(f"{name}: frame {i} declares {f.size} bytes, over the limit of {lim.max_frame_size}")
            if f.size > f.length * MAX_ZSTD_RATIO or f.length > _compress_bound(f.size):
                raise LimitError(f"{name}: frame {i}: no zstd frame of {f.length} bytes holds {f.size} bytes")
            expected += f.length
        if expected != index_offset:
            raise LimitError(f"{name}: frames end at {expected} but the index starts at {index_offset}")
        fill = [0] * len(index.frames)
        previous = ""
        for b in sorted(index.blobs, key=lambda b: (b.frame, b.offset, b.size)):
            if b.frame >= len(index.frames):
                raise LimitError(f"{name}: blob {b.digest} is in frame {b.frame}, which does not exist")
            if b.offset != fill[b.frame]:
                raise LimitError(
                    f"{name}: blob {b.digest} at offset {b.offset} of frame {b.frame} overlaps or leaves a gap "
                    f"(expected {fill[b.frame]})"
                )
            fill[b.frame] += b.size
            if fill[b.frame] > index.frames[b.frame].size:
                raise LimitError(f"{name}: blob {b.digest} runs past the end of frame {b.frame}")
        for i, f in enumerate(index.frames):
            if fill[i] != f.size:
                raise LimitError(f"{name}: frame {i} holds {f.size} bytes but its blobs cover {fill[i]}")
        for b in index.blobs:
            if b.digest <= previous:
                raise FormatError(f"{name}: blob table not sorted or has a duplicate at {b.digest}")
            previous = b.digest

    def _manifest(self, index: _IndexOnDisk, decoded: list[Artifact | UnknownArtifact]) -> Manifest:
        name = self.name
        environments: dict[str, Environment] = {}
        for env in index.environments:
            d = env.digest
            if d in environments:
                raise FormatError(f"{name}: duplicate environment {d}")
            environments[d] = env
        if list(environments) != sorted(environments):
            raise FormatError(f"{name}: environments are not sorted by digest")
        artifacts: list[Artifact | UnknownArtifact] = []
        questions: dict[tuple[str, str, str], int] = {}
        for i, artifact in enumerate(decoded):
            if artifact.env not in environments:
                raise FormatError(f"{name}: artifact #{i} refers to a missing environment {artifact.env}")
            if isinstance(artifact, Artifact):
                for ref in artifact.blob_refs():
                    if ref not in self._blobs:
                        raise FormatError(f"{name}: artifact #{i} refers to a missing blob {ref}")
            question = (artifact.kind, artifact.env, artifact.key)
            if question in questions:
                raise FormatError(
                    f"{name}: artifacts #{questions[question]} and #{i} are two {artifact.kind} entries "
                    f"for {artifact.key!r} (a duplicate or a conflict)"
                )
            questions[question] = i
            artifacts.append(artifact)
        for key in index.digested_annotations:
            if key not in index.annotations:
                raise FormatError(f"{name}: digested annotation {key!r} has no value")
        return Manifest(
            environments=environments,
            artifacts=tuple(artifacts),
            annotations=dict(index.annotations),
            digested_annotations=tuple(index.digested_annotations),
        )

    # -- reading frames and blobs

    def _entry(self, digest: str) -> BlobEntry:
        try:
            return self._blobs[digest]
        except KeyError:
            raise BlobNotFoundError(f"{self.name}: no blob {digest}") from None

    def _frame(self, index: int) -> bytes:
        with self._frame_cache_lock:
            data = self._frame_cache.get(index)
            if data is not None:
                self._frame_cache.move_to_end(index)
                return data
        data = self._load_frame(index)
        with self._frame_cache_lock:
            self._frame_cache[index] = data
            while len(self._frame_cache) > self._frame_cache_size:
                self._frame_cache.popitem(last=False)
        return data

    def _load_frame(self, index: int) -> bytes:
        f = self._frames[index]
        return self._decode_frame(index, self._read_exact(f.offset, f.length))

    def _fetch(self, indices: list[int]) -> list[bytes]:
        """The compressed bytes of some frames, in one batch of reads."""
        ranges = [(self._frames[i].offset, self._frames[i].length) for i in indices]
        payloads = self._source.read_many(ranges)
        self.bytes_read += sum(len(p) for p in payloads)
        return payloads

    def _decode_frame(self, index: int, payload: bytes) -> bytes:
        f = self._frames[index]
        if len(payload) != f.length:
            raise LimitError(f"{self.name}: frame {index}: got {len(payload)} of {f.length} bytes at {f.offset}")
        if hashlib.sha256(payload).hexdigest() != f.sha256:
            raise IntegrityError(
                f"{self.name}: frame {index} (offset {f.offset}, {f.length} bytes) does not match its sha256"
            )
        return _decompress(payload, f.size, f"{self.name}: frame {index}")

    def _slice(self, entry: BlobEntry, frame: bytes) -> bytes:
        data = frame[entry.offset : entry.offset + entry.size]
        if digest_bytes(data) != entry.digest:
            raise IntegrityError(f"{self.name}: blob {entry.digest} (frame {entry.frame}) does not match its digest")
        return data

    def _read_exact(self, offset: int, length: int) -> bytes:
        data = self._source.read(offset, length)
        self.bytes_read += len(data)
        if len(data) != length:
            raise LimitError(f"{self.name}: got {len(data)} of {length} bytes at offset {offset} (file truncated?)")
        return data


def _compress_bound(size: int) -> int:
    """ZSTD_COMPRESSBOUND: no zstd frame holding `size` bytes (made by zstd) is longer than this."""
    return size + (size >> 8) + (((128 << 10) - size) >> 11 if size < (128 << 10) else 0)


def _check_header(header: bytes, version: tuple[int, int]) -> None:
    magic, major, minor, flags = _HEADER.unpack(header)
    if magic != MAGIC:
        raise FormatError("not an atpack file (bad header magic)")
    if (major, minor) != version or flags != 0:
        raise FormatError(
            f"header says format {major}.{minor} flags {flags:#x}; footer says {version[0]}.{version[1]} flags 0"
        )


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor: a ZstdDecompressor must not be used by two threads at once."""
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def _decompress(payload: bytes, size: int, what: str) -> bytes:
    try:
        declared = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as e:
        raise FormatError(f"{what}: not a zstd frame ({e})") from e
    if declared != size:
        raise FormatError(f"{what}: zstd frame declares {declared} bytes, the table says {size}")
    try:
        data = _decompressor().decompress(payload, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"{what}: {e}") from e
    if len(data) != size:
        raise IntegrityError(f"{what}: decompressed to {len(data)} bytes, expected {size}")
    return data


@functools.lru_cache(maxsize=8)
def _decoders(types: tuple[type[Artifact], ...]) -> tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]:
    """Decoders of one artifact, and of an index's artifacts, of these kinds (a tagged union)."""
    union = Union[types]  # type: ignore[valid-type]
    known = msgspec.defstruct("_KnownArtifacts", [("artifacts", tuple[union, ...], ())])  # type: ignore[valid-type]
    return msgspec.json.Decoder(union), msgspec.json.Decoder(known)


_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding JSON raises: msgspec checks UTF-8 only in the strings it decodes, with Python's
codec, so invalid UTF-8 is a `UnicodeDecodeError`, not a `msgspec.DecodeError`; JSON nested
deeper than Python's recursion limit (even where it is skipped) is a `RecursionError`."""


def _why_undecodable(error: Exception, raw: bytes) -> str:
    """Why JSON did not decode, in atpack's words where they are its own (invalid UTF-8, too
    deeply nested), else the decoder's: its wording changes between msgspec releases."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 (byte {e.start})"
    if isinstance(error, RecursionError):
        return "JSON nested too deeply to read"
    return str(error)


def _decode_artifacts(index: bytes, raws: list[bytes], name: str) -> list[Artifact | UnknownArtifact]:
    """Every artifact, typed: in one pass when every kind is known (the usual case), else one
    by one, keeping unknown kinds as `UnknownArtifact`."""
    try:
        return list(_decoders(kinds.types())[1].decode(index).artifacts)
    except _DECODE_ERRORS:
        return [decode_artifact(raw, f"{name}: artifact #{i}") for i, raw in enumerate(raws)]


def _shown_key(key: str) -> str:
    return repr(key) if len(key) <= 80 else repr(key[:77]) + "..."


def decode_artifact(raw: bytes, what: str) -> Artifact | UnknownArtifact:
    try:
        probe = _probe_decoder.decode(raw)
        if not kinds.known(probe.kind):
            msgspec.json.decode(raw)  # the fields the probe skipped are JSON too (UTF-8 included)
            return UnknownArtifact(probe.kind, probe.env, raw)
        artifact: Artifact = _decoders(kinds.types())[0].decode(raw)
    except _DECODE_ERRORS as e:
        raise FormatError(f"{what}: {_why_undecodable(e, raw)}") from e
    return artifact


def _check_canonical(artifact: Artifact | UnknownArtifact, raw: bytes, what: str) -> None:
    """The text of an artifact is its canonical encoding (so that its digest is its content's)."""
    try:
        value = msgspec.json.decode(raw) if isinstance(artifact, UnknownArtifact) else artifact
    except _DECODE_ERRORS as e:
        raise FormatError(f"{what} ({artifact.kind}): {_why_undecodable(e, raw)}") from e
    if canonical(value) != raw:
        raise FormatError(f"{what} ({artifact.kind}) is not in canonical form")


# --------------------------------------------------------------------------- entry points


def open_pack(
    url: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    retry: storage.Retry | None = None,
) -> Pack:
    """Open a pack on any fsspec URL for reading (the index is read and checked now). Reads
    from a remote store are retried as `retry` (an `atpack.Retry`) says; by default, as
    `Retry()` says.

    Raises `NotFoundError` (also a `FileNotFoundError`) where there is no such file,
    `IsAFolderError` (also an `IsADirectoryError`) for a folder, `FormatError` for a file
    that is not a pack."""
    source = storage.open_source(url, storage_options, retry=retry)
    try:
        return Pack(source, limits=limits)
    except BaseException:
        source.close()
        raise


@contextlib.contextmanager
def create(
    url: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    level: int = DEFAULT_LEVEL,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> Iterator[PackWriter]:
    """Write a pack to any fsspec URL. Readers see it only once it is complete; if the block
    raises, nothing is published."""
    with storage.publish(url, storage_options) as out:
        writer = PackWriter(out, level=level, group_size=group_size)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    log.info(
        "wrote %s (%s bytes, %d artifacts)", os.fspath(url), writer.info and writer.info.size, len(writer._artifacts)
    )
