"""PyTorch's Megacache blobs (`torch.compiler.save_cache_artifacts`) in and out, and replay of
their entries through torch's own registered `populate_cache()` hooks.

The blob format (torch 2.8 to 2.13, `torch/utils/_appending_byte_serializer.py`): a CRC32 (4
bytes, big-endian) of everything after it, a u64 version (1), then sections, each a type name
and a count followed by that many (key, content) entries. Integers are u64 big-endian; bytes are
a u64 length and the raw bytes; strings are the bytes of their base64-encoded UTF-8. Parsing
never unpickles anything: contents stay opaque bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from ..artifacts import MEGACACHE_TYPES, MegacacheEntry, MegacacheOther
from ..errors import AtpackError, FormatError
from . import AddBlob

__all__ = ["MAX_ENTRIES", "blob_entries", "collect", "populate", "write_blob"]

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


def populate(
    entries: list[tuple[MegacacheEntry, bytes]], inductor_dir: str, triton_dir: str | None
) -> list[tuple[MegacacheEntry, Exception | None]]:
    """Replay entries, in blob order, through torch's own `populate_cache()` of each type, with
    torch's cache folder pointed at `inductor_dir` and triton's at `triton_dir` (without it,
    torch puts a graph's kernels in the per-device folder of its device, as when it compiles).
    Returns each entry with the error its hook raised, if any (one failing entry does not stop
    the others)."""
    try:
        from torch.compiler._cache import CacheArtifactFactory
    except ImportError as e:
        raise AtpackError(f"replaying Megacache entries needs torch ({e})") from e
    _register_artifact_types()
    results: list[tuple[MegacacheEntry, Exception | None]] = []
    with _cache_dirs(inductor_dir, triton_dir):
        for entry, content in sorted(entries, key=lambda ec: ec[0].seq):
            try:
                CacheArtifactFactory.create(entry.type_name, entry.entry_key, content).populate_cache()
                if entry.type_name == "inductor":
                    _emit_triton_bundle(content)
            except Exception as e:  # torch's hooks raise anything: the caller reports it
                log.debug("populate_cache of %s %s failed", entry.type_name, entry.entry_key, exc_info=True)
                results.append((entry, e))
            else:
                results.append((entry, None))
    return results


def _emit_triton_bundle(content: bytes) -> None:
    """Write the Triton kernels bundled in a compiled graph into the Triton cache now, as torch
    2.13's `populate_cache` does; older torch writes them during the first compiled call (the
    graph's cache hit), which then pays for it. Only reached for trusted (pickled) entries."""
    from torch._inductor.codecache import FxGraphCache

    if hasattr(FxGraphCache, "_emit_triton_bundle"):
        return  # torch's own populate_cache did it
    import pickle

    from torch._inductor.triton_bundler import TritonBundler

    if not TritonBundler.is_enabled():
        return
    graph = pickle.loads(content)  # trusted by the caller: this entry is replayed only with trust_pickles
    if bundle := getattr(graph, "_triton_bundle", None):
        TritonBundler.read_and_emit(bundle)


def _register_artifact_types() -> None:
    """Import the modules whose classes register torch's Megacache types."""
    from torch.compiler._cache import CacheArtifactManager

    ensure = getattr(CacheArtifactManager, "_ensure_cache_artifacts_registered", None)
    if ensure is not None:
        ensure()
        return
    for module in (
        "torch._inductor.codecache",
        "torch._inductor.runtime.autotune_cache",
        "torch._functorch._aot_autograd.autograd_cache",
        "torch._dynamo.pgo",
        "torch._dynamo.precompile_context",
    ):
        with contextlib.suppress(ImportError):
            __import__(module)


@contextlib.contextmanager
def _cache_dirs(inductor_dir: str, triton_dir: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.abspath(inductor_dir)
    if triton_dir is None:
        os.environ.pop("TRITON_CACHE_DIR", None)
    else:
        os.environ["TRITON_CACHE_DIR"] = os.path.abspath(triton_dir)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
