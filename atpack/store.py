"""Byte access to packs on any fsspec filesystem: ranged reads and atomic publishing.

URLs and `storage_options` go to fsspec unchanged, so chained URLs
(``simplecache::s3://bucket/x.atpack``) and every installed protocol work.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from typing import IO, Any, Protocol

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from .errors import StorageError

__all__ = ["RangeSource", "Sink", "open_source", "publish", "resolve"]

log = logging.getLogger(__name__)


class RangeSource(Protocol):
    """Random access to the bytes of one file."""

    name: str
    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]: ...

    def close(self) -> None: ...


def resolve(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path for `url`; options are passed through unchanged."""
    try:
        fs, path = fsspec.core.url_to_fs(os.fspath(url), **(storage_options or {}))
    except (ValueError, ImportError) as e:
        raise StorageError(f"{url}: {e}") from e
    return fs, path


class _LocalSource:
    """A local file read with pread: no per-read open, no buffering between reads."""

    def __init__(self, path: str) -> None:
        self.name = path
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as e:
            raise StorageError(f"{path}: {e.strerror or e}") from e
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.read(offset, length) for offset, length in ranges]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _FsspecSource:
    """A file on any fsspec filesystem; every read is one ranged request."""

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self.name = url
        self._fs = fs
        self._path = path
        try:
            self.size = int(fs.size(path))
        except FileNotFoundError as e:
            raise StorageError(f"{url}: no such pack") from e
        except Exception as e:
            raise StorageError(f"{url}: {type(e).__name__}: {e}") from e

    def read(self, offset: int, length: int) -> bytes:
        try:
            return bytes(self._fs.cat_file(self._path, start=offset, end=offset + length))
        except Exception as e:
            raise StorageError(f"{self.name}: reading {length} bytes at {offset}: {type(e).__name__}: {e}") from e

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        if len(ranges) <= 1:
            return [self.read(o, n) for o, n in ranges]
        try:
            out = self._fs.cat_ranges(
                [self._path] * len(ranges), [o for o, _ in ranges], [o + n for o, n in ranges], on_error="raise"
            )
        except Exception as e:
            raise StorageError(f"{self.name}: reading {len(ranges)} ranges: {type(e).__name__}: {e}") from e
        return [bytes(b) for b in out]

    def close(self) -> None:
        pass


def open_source(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> RangeSource:
    """Open `url` for ranged reads."""
    fs, path = resolve(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        return _LocalSource(path)
    return _FsspecSource(fs, path, os.fspath(url))


@contextlib.contextmanager
def publish(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Iterator[Sink]:
    """Write a file that readers see whole or not at all.

    Local files are written beside the target and renamed over it; other filesystems write
    without autocommit and commit at the end (an object store's upload completes atomically).
    If the block raises, nothing is published.
    """
    fs, path = resolve(url, storage_options)
    name = os.fspath(url)
    if isinstance(fs, LocalFileSystem):
        with _publish_local(path) as f:
            yield _GuardedSink(f, name)
        return
    if isinstance(fs, MemoryFileSystem):
        # memory:// ignores autocommit=False (it stores a file as it opens it): store it at the end
        buffer = io.BytesIO()
        yield buffer
        fs.pipe_file(path, buffer.getvalue())
        log.debug("published %s", url)
        return
    try:
        f = fs.open(path, "wb", autocommit=False)
    except Exception as e:
        raise StorageError(f"{url}: cannot write: {type(e).__name__}: {e}") from e
    try:
        try:
            yield _GuardedSink(f, name)
        except BaseException:
            _discard(f)
            raise
        try:
            f.close()
            if not getattr(f, "autocommit", False):  # simplecache's file uploads on close, whatever it was asked
                f.commit()
        except Exception as e:
            _discard(f)
            raise StorageError(f"{url}: cannot write: {type(e).__name__}: {e}") from e
    finally:
        # fs.open(autocommit=False) queues the file in fs.transaction.files, which no transaction drains
        with contextlib.suppress(Exception):
            fs.transaction.files.remove(f)
    log.debug("published %s", url)


class Sink(Protocol):
    """Where a pack is written: a sequential byte stream."""

    def write(self, data: bytes | memoryview, /) -> int: ...


class _GuardedSink:
    """A stream whose failures (a full disk, a dropped connection) are `StorageError`s."""

    def __init__(self, f: IO[bytes], url: str) -> None:
        self._f = f
        self._url = url

    def write(self, data: bytes | memoryview, /) -> int:
        try:
            return self._f.write(data)
        except Exception as e:
            raise StorageError(f"{self._url}: cannot write: {type(e).__name__}: {e}") from e


def _discard(f: Any) -> None:
    with contextlib.suppress(Exception):
        f.discard()
    # never close a discarded file: fsspec's close() (__del__ runs it too) would flush it, starting a new upload
    with contextlib.suppress(Exception):
        f.closed = True


@contextlib.contextmanager
def _publish_local(path: str) -> Iterator[IO[bytes]]:
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{path}: cannot create folder: {e.strerror or e}") from e
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)
    log.debug("published %s", path)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
