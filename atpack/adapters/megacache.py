"""PyTorch's Megacache blobs (`torch.compiler.save_cache_artifacts`) in and out, and where
their entries go when replayed.

Replay writes each entry's file where torch's own Megacache loader would (its layout per torch
release is an entry of `atpack.seam.INTERNALS`), but
checks first what torch does not: that the key has the shape torch gives keys of that type (torch
joins keys into paths), and that an ``autotune`` entry, replayed without trust, is a
``.best_config`` JSON object and not a pickle. The caller writes the files (`atpack.files`), so
that nothing there is replaced and no symlink is followed.

The blob format (torch 2.8 to 2.13; `atpack.seam.INTERNALS`): a CRC32 (4
bytes, big-endian) of everything after it, a u64 version (1), then sections, each a type name
and a count followed by that many (key, content) entries. Integers are u64 big-endian; bytes are
a u64 length and the raw bytes; strings are the bytes of their base64-encoded UTF-8. Parsing
never unpickles anything: contents stay opaque bytes.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ..artifacts import (
    MEGACACHE_TYPES,
    MegacacheAotAutograd,
    MegacacheAutotune,
    MegacacheEntry,
    MegacacheInductor,
    MegacacheOther,
    MegacachePgo,
    MegacachePrecompile,
)
from ..errors import CacheFileError, FormatError, UnsafeContentError
from ..files import CacheDir, FileWrite
from ..kinds import Kind
from .common import AddBlob
from .inductor import best_config_problem, parse_best_config, render_best_config

__all__ = [
    "KINDS",
    "MAX_ENTRIES",
    "blob_entries",
    "collect",
    "content",
    "entries",
    "target",
    "write_blob",
]

log = logging.getLogger(__name__)

VERSION = 1
MAX_ENTRIES = 1 << 20
_U64 = struct.Struct(">Q")

Entry = tuple[str, str, bytes]
"""(type, key, content) of one Megacache entry."""


def blob_entries(data: bytes) -> list[Entry]:
    """The entries of a blob, in order. A blob that is damaged or not a Megacache blob is
    refused with a `FormatError` naming what is wrong."""
    if len(data) < 12:
        raise FormatError(f"megacache blob: {len(data)} bytes is too short to be a blob")
    crc = zlib.crc32(memoryview(data)[4:])
    if data[:4] != crc.to_bytes(4, "big"):
        raise FormatError(
            f"megacache blob: checksum mismatch (stored {data[:4].hex()}, computed {crc:08x}): damaged or truncated"
        )
    reader = _Reader(data)
    if (version := reader.u64()) != VERSION:
        raise FormatError(f"megacache blob: version {version}; atpack reads version {VERSION} (torch 2.8 to 2.13)")
    entries: list[Entry] = []
    while not reader.done():
        kind = reader.text()
        count = reader.u64()
        if count > MAX_ENTRIES - len(entries):
            raise FormatError(f"megacache blob: section {kind!r} declares {count} entries, over the limit")
        for _ in range(count):
            entries.append((kind, reader.text(), reader.bytes()))
    return entries


def write_blob(entries: Iterable[Entry]) -> bytes:
    """A blob torch's `load_cache_artifacts` reads: one section per run of entries of one type."""
    body = bytearray(_U64.pack(VERSION))
    sections: list[tuple[str, list[tuple[str, bytes]]]] = []
    for kind, key, content in entries:
        if not sections or sections[-1][0] != kind:
            sections.append((kind, []))
        sections[-1][1].append((key, content))
    for kind, items in sections:
        _put_text(body, kind)
        body += _U64.pack(len(items))
        for key, content in items:
            _put_text(body, key)
            _put_bytes(body, content)
    return zlib.crc32(body).to_bytes(4, "big") + bytes(body)


def collect(data: bytes, env: str, add_blob: AddBlob) -> Iterator[MegacacheEntry]:
    """One artifact per entry of the blob `data`, contents stored as blobs."""
    for seq, (kind, key, content) in enumerate(blob_entries(data)):
        digest = add_blob(content, f"megacache.{kind}")
        fields: dict[str, Any] = {"env": env, "entry_key": key, "seq": seq, "content": digest, "size": len(content)}
        cls = MEGACACHE_TYPES.get(kind)
        yield cls(**fields) if cls is not None else MegacacheOther(type=kind, **fields)


def entries(artifacts: Iterable[object]) -> list[MegacacheEntry]:
    """The Megacache entries among `artifacts`, in the order torch replays them (`seq`)."""
    return sorted((a for a in artifacts if isinstance(a, MegacacheEntry)), key=lambda a: a.seq)


def target(entry: MegacacheEntry) -> str:
    """The file, relative to the Inductor cache folder, that torch's Megacache loader writes
    `entry` to (torch 2.8 to 2.13), once its key is checked to have the shape torch gives keys of
    its type: a key of another shape is refused with `UnsafeContentError`, whatever its type
    claims and whether trusted or not (torch joins keys into paths unchecked)."""
    kind, key = entry.type_name, entry.entry_key
    shape = _KEY_SHAPES.get(kind)
    if shape is None or type(entry) is not MEGACACHE_TYPES.get(kind):
        raise UnsafeContentError(f"refusing Megacache entry of type {kind!r}: atpack replays only {_TYPES}")
    if kind == "pgo":
        key = _pgo_key(key)
    if not shape.fullmatch(key):
        raise UnsafeContentError(f"refusing Megacache {kind} key {key!r}: not the shape torch gives {kind} keys")
    if kind == "autotune":
        return key  # <cache dir>/<key>
    if kind == "inductor":  # the FX graph cache: one file per guarded entry, named by its content
        return f"fxgraph/{key[1:3]}/{key}/{_content_name(entry.content)}"
    if kind == "aot_autograd":
        return f"aotautograd/{key}/{_content_name(entry.content)}"
    if kind == "pgo":  # dynamo's profile of a job
        return "dynamo/" + re.sub(r'[<>:"/\\|?*]', "_", f"code_state_{key}.pkl")
    return f"dynamo/{key}/entry"  # precompile


def content(entry: MegacacheEntry, data: bytes) -> bytes:
    """What replaying `entry` writes: for an ``autotune`` entry (data, replayed without trust),
    its ``.best_config`` JSON as torch writes it, once checked to be one (never a pickle, which
    the next compile would unpickle if the file were elsewhere); any other entry's bytes as they
    are (pickles, replayed only with trust)."""
    if entry.type_name != "autotune":
        return data
    try:
        best_config = parse_best_config(entry.entry_key, data, entry.env)
    except (CacheFileError, RecursionError) as e:  # JSON nested too deep for Python's parser
        why = str(e) if isinstance(e, CacheFileError) else "JSON nested too deeply"
        raise UnsafeContentError(f"refusing Megacache autotune entry {entry.entry_key!r}: {why}") from e
    if problem := best_config_problem(best_config):
        raise UnsafeContentError(
            f"refusing Megacache autotune entry {entry.entry_key!r}: not a config Inductor emits: {problem}"
        )
    return render_best_config(best_config)


def check_entry(entry: MegacacheEntry, *, trust_pickles: bool) -> None:
    """Refuse (`UnsafeContentError`) an entry that populate would refuse before reading it, for
    every way out of a pack (the export to torch's blob, a capture's spool): torch's loader writes
    each entry where its key says and unpickles it later, so a key of another shape, an unknown
    type or a pickle not trusted never leaves the pack. Its bytes then go through `content`, as
    populate's."""
    target(entry)
    if entry.runs_code and not trust_pickles:
        raise UnsafeContentError(
            f"refusing Megacache {entry.type_name} entry {entry.entry_key!r}: {entry.runs_code}; "
            "pass trust_pickles=True (--trust-pickles) to export it"
        )


_BASE32_KEY = "[a-z2-7]{51}"  # torch's sha256_hash: base32 of a SHA-256, 51 characters, lower case
_KEY_SHAPES = {
    "autotune": re.compile(r"[a-z0-9]{2}/[0-9a-f]{64}\.best_config"),  # as inductor.best_config/1's path
    "inductor": re.compile("f" + _BASE32_KEY),  # FxGraphCachePickler.get_key: "f" + sha256_hash
    "aot_autograd": re.compile("a" + _BASE32_KEY),  # autograd_cache_key: "a" + sha256_hash
    # format_cache_key: <job>:<rank>:<tag>, no control character; one pass (a job may hold ":", and
    # a pattern free to end it at any of them backtracks quadratically on a long key)
    "pgo": re.compile(r"(?=[^\x00-\x1f\x7f]*\Z).*?.:(?:None|[0-9]+):.*"),
    "precompile": re.compile(r"[0-9a-f]{64}"),  # CompilePackage.source_id_from_fn: a SHA-256 in hex
}
_TYPES = ", ".join(_KEY_SHAPES)


def _content_name(digest: str) -> str:
    """torch's `sha256_hash(content)`, the name of a content-addressed cache file, from the
    content's digest (checked against the bytes when they are read)."""
    return base64.b32encode(bytes.fromhex(digest.split(":", 1)[1]))[:51].decode("ascii").lower()


def _pgo_key(key: str) -> str:
    """The key torch's Megacache loader writes a profile under (torch 2.8 to 2.13): a key of a MAST
    job (Meta's scheduler) becomes this job's, which only torch inside such a job can name:
    refused here; any other stays as it is."""
    if key.startswith("mast:"):
        raise UnsafeContentError(
            f"refusing Megacache pgo key {key!r}: a MAST job's profile, which torch renames for the job it runs in"
        )
    return key


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 4

    def done(self) -> bool:
        return self._at == len(self._data)

    def u64(self) -> int:
        if self._at + 8 > len(self._data):
            raise FormatError(f"megacache blob: truncated at byte {self._at}")
        (value,) = _U64.unpack_from(self._data, self._at)
        self._at += 8
        return int(value)

    def bytes(self) -> bytes:
        size = self.u64()
        if size > len(self._data) - self._at:
            raise FormatError(f"megacache blob: an entry at byte {self._at} declares {size} bytes, past the end")
        value = bytes(self._data[self._at : self._at + size])
        self._at += size
        return value

    def text(self) -> str:
        raw = self.bytes()
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise FormatError(f"megacache blob: a name before byte {self._at} is not base64 UTF-8 ({e})") from e


def _put_text(out: bytearray, text: str) -> None:
    _put_bytes(out, base64.b64encode(text.encode("utf-8")))


def _put_bytes(out: bytearray, data: bytes) -> None:
    out += _U64.pack(len(data))
    out += data


# --------------------------------------------------------------------------- kinds


E = TypeVar("E", bound=MegacacheEntry)


class _Entry(Kind[E]):
    """A Megacache entry, written where torch's own Megacache loader would write it (`target`),
    its bytes as they are; of two entries for one file, torch's later record wins."""

    def __init__(self, artifact: type[E], *, turns_replay_on: bool = False) -> None:
        super().__init__()
        self.artifact = artifact
        self.turns_replay_on = turns_replay_on

    def files(self, artifact: E, root: CacheDir) -> list[FileWrite]:
        return [FileWrite(root.path(target(artifact)), blob=artifact.content, size=artifact.size)]

    def precedence(self, artifact: E) -> tuple[int, int]:
        return (0, artifact.seq)  # below a collected result; torch's later record over its earlier


class _Autotune(_Entry[MegacacheAutotune]):
    """A ``.best_config`` torch recorded, data written without trust: refused unless its bytes are
    a ``.best_config`` object as torch writes it (never a pickle at a path torch unpickles)."""

    def check_blob(self, artifact: MegacacheAutotune) -> str | None:
        return artifact.content

    def check(self, artifact: MegacacheAutotune, data: bytes) -> None:
        if content(artifact, data) != data:
            raise UnsafeContentError(
                f"refusing Megacache autotune entry {artifact.entry_key!r}: not a .best_config as torch writes it"
            )


class _Other(_Entry[MegacacheOther]):
    def never(self, artifact: MegacacheOther) -> str:
        return f"a Megacache entry of type {artifact.type!r}, which atpack never replays (trusted or not)"


KINDS: tuple[Kind[Any], ...] = (
    _Autotune(MegacacheAutotune, turns_replay_on=True),  # a .best_config file: what the replay acts on
    _Entry(MegacacheInductor),  # its Triton kernels: written by torch at the graph's first hit
    _Entry(MegacacheAotAutograd),
    _Entry(MegacachePgo),
    _Entry(MegacachePrecompile),
    _Other(MegacacheOther),
)
"""Megacache's kinds (`atpack.kinds`): collected from torch's blob, not from a folder."""
