"""Byte access to packs on any fsspec filesystem: ranged reads and atomic publishing.

URLs and `storage_options` go to fsspec unchanged, so chained URLs
(``simplecache::s3://bucket/x.atpack``) and every installed protocol work.

Reads from a remote store are retried (`Retry`): on top of what the filesystem retries itself
(s3fs and botocore retry connection errors, 5xx responses and cut bodies), a read that still
fails, or that returns fewer bytes than asked, is tried again with exponential backoff, and
every read ends within a deadline, with its data or a `StorageError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Protocol, TypeVar

import fsspec
import fsspec.asyn
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from .errors import IsAFolderError, NotFoundError, StorageError, storage_error
from .files import sweep

__all__ = ["RETRY", "RangeSource", "Retry", "Sink", "open_source", "publish", "resolve"]

_T = TypeVar("_T")

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
        if os.path.isdir(path):  # a folder opens for reading here and fails only at its first read
            raise IsAFolderError(f"{path}: a folder, not a pack file")
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as e:
            raise storage_error(path, e) from e
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.read(offset, length) for offset, length in ranges]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclasses.dataclass(frozen=True)
class Retry:
    """How reads from a remote store are retried.

    A read is tried up to `attempts` times: again after any error but a missing file or a
    refused permission, and again when it returns fewer bytes than asked (short of the end of
    the file). The first retry waits `backoff` seconds, each next one twice as long (up to
    `max_backoff`), each wait drawn between half and all of that. No read takes more than
    `deadline` seconds, its waits and attempts together: on an async filesystem (s3fs, gcsfs,
    http) a request still running at the deadline is cancelled; on others the deadline is
    checked between attempts. An infinite deadline (``math.inf``) sets no time limit.
    """

    attempts: int = 5
    backoff: float = 0.1
    max_backoff: float = 2.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0 or self.deadline <= 0:
            raise ValueError(f"invalid {self}")


RETRY = Retry()
"""What `open_source` uses unless told otherwise (and so `atpack.open`)."""

_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
"""Errors that a retry does not mend."""


class _ShortRead(Exception):
    """A read returned fewer bytes than asked."""


class _FsspecSource:
    """A file on any fsspec filesystem; every read is one ranged request, retried as `retry` says."""

    def __init__(self, fs: Any, path: str, url: str, retry: Retry = RETRY) -> None:
        self.name = url
        self._fs = fs
        self._path = path
        self._retry = retry
        self.retries = 0
        """How many times a read was tried again."""
        # async filesystems take a timeout through fsspec's sync(): a hung request ends at the deadline
        self._loop = fs.loop if isinstance(fs, fsspec.asyn.AsyncFileSystem) and not fs.asynchronous else None
        try:
            self.size = int(self._retrying("size", lambda timeout: self._call("size", timeout, path)))
        except StorageError as e:
            if isinstance(e.__cause__, FileNotFoundError):
                raise NotFoundError(f"{url}: no such pack") from e.__cause__
            raise

    def read(self, offset: int, length: int) -> bytes:
        expected = max(0, min(length, self.size - offset))

        def attempt(timeout: float | None) -> bytes:
            data = bytes(self._call("cat_file", timeout, self._path, start=offset, end=offset + length))
            if len(data) < expected:
                raise _ShortRead(f"got {len(data)} of {expected} bytes")
            return data

        return self._retrying(f"reading {length} bytes at {offset}", attempt)

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        if len(ranges) <= 1:
            return [self.read(o, n) for o, n in ranges]
        out: list[bytes | None] = [None] * len(ranges)

        def attempt(timeout: float | None) -> list[bytes]:
            todo = [i for i, b in enumerate(out) if b is None]  # what the last attempts did not get
            got = self._call(
                "cat_ranges",
                timeout,
                [self._path] * len(todo),
                [ranges[i][0] for i in todo],
                [ranges[i][0] + ranges[i][1] for i in todo],
                on_error="return",
            )
            failed: list[str] = []
            for i, data in zip(todo, got):
                offset, length = ranges[i]
                if isinstance(data, BaseException):
                    if isinstance(data, _PERMANENT):
                        raise data
                    failed.append(f"at {offset}: {type(data).__name__}: {data}")
                elif len(data) < max(0, min(length, self.size - offset)):
                    failed.append(f"at {offset}: got {len(data)} of {length} bytes")
                else:
                    out[i] = bytes(data)
            if failed:
                raise _ShortRead(f"{len(failed)} of {len(todo)} ranges failed, first {failed[0]}")
            return [b for b in out if b is not None]

        return self._retrying(f"reading {len(ranges)} ranges", attempt)

    def close(self) -> None:
        pass

    def _call(self, method: str, timeout: float | None, *args: Any, **kwargs: Any) -> Any:
        """``fs.method(*args, **kwargs)``, cut off after `timeout` seconds where fsspec can."""
        if self._loop is not None and timeout is not None:
            return fsspec.asyn.sync(self._loop, getattr(self._fs, "_" + method), *args, timeout=timeout, **kwargs)
        return getattr(self._fs, method)(*args, **kwargs)

    def _retrying(self, what: str, attempt: Callable[[float | None], _T]) -> _T:
        """`attempt(timeout)`, retried as `self._retry` says; its last error as a `StorageError`."""
        policy = self._retry
        start = time.monotonic()
        deadline = start + policy.deadline
        backoff = policy.backoff
        tries = 0
        while True:
            tries += 1
            try:
                return attempt(None if math.isinf(deadline) else max(0.001, deadline - time.monotonic()))
            except _PERMANENT as e:
                raise StorageError(f"{self.name}: {what}: {type(e).__name__}: {e}") from e
            except Exception as e:
                problem = f"{type(e).__name__}: {e}" if not isinstance(e, _ShortRead) else str(e)
                wait = random.uniform(backoff / 2, backoff)
                now = time.monotonic()
                if tries >= policy.attempts or now + wait >= deadline:
                    limit = f"{tries} attempts" if tries >= policy.attempts else f"the {policy.deadline:g} s deadline"
                    raise StorageError(
                        f"{self.name}: {what}: {problem} (gave up after {tries} attempts in {now - start:.1f} s: "
                        f"{limit} reached)"
                    ) from e
            self.retries += 1
            log.debug("%s: %s: %s; retrying in %.2f s", self.name, what, problem, wait)
            time.sleep(wait)
            backoff = min(backoff * 2, policy.max_backoff)


def open_source(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, retry: Retry | None = None
) -> RangeSource:
    """Open `url` for ranged reads; reads from remote stores are retried as `retry` (default
    `RETRY`) says."""
    fs, path = resolve(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        return _LocalSource(path)
    return _FsspecSource(fs, path, os.fspath(url), RETRY if retry is None else retry)


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
    sink = _GuardedSink(f, name)
    try:
        try:
            yield sink
        except BaseException:
            _discard(f)
            raise
        try:
            f.close()
            if not getattr(f, "autocommit", False):  # simplecache's file uploads on close, whatever it was asked
                f.commit()
        except Exception as e:
            _discard(f)
            if not _landed(fs, path, sink):
                raise StorageError(f"{url}: cannot write: {type(e).__name__}: {e}") from e
            log.warning("%s: the upload completed although its last response was lost (%s)", url, e)
    finally:
        # fs.open(autocommit=False) queues the file in fs.transaction.files, which no transaction drains
        with contextlib.suppress(Exception):
            fs.transaction.files.remove(f)
    log.debug("published %s", url)


class Sink(Protocol):
    """Where a pack is written: a sequential byte stream."""

    def write(self, data: bytes | memoryview, /) -> int: ...


class _GuardedSink:
    """A stream whose failures (a full disk, a dropped connection) are `StorageError`s, which
    remembers how many bytes went through it and the last of them."""

    TAIL = 64 << 10

    def __init__(self, f: IO[bytes], url: str) -> None:
        self._f = f
        self._url = url
        self.size = 0
        self._tail = bytearray()

    def write(self, data: bytes | memoryview, /) -> int:
        try:
            written = self._f.write(data)
        except Exception as e:
            raise StorageError(f"{self._url}: cannot write: {type(e).__name__}: {e}") from e
        self.size += len(data)
        self._tail += data[-self.TAIL :]
        if len(self._tail) > 2 * self.TAIL:  # trimmed now and then: amortized, whatever the write sizes
            del self._tail[: -self.TAIL]
        return written

    @property
    def tail(self) -> bytes:
        """The last bytes written (up to `TAIL`)."""
        return bytes(self._tail[-self.TAIL :])


def _landed(fs: Any, path: str, sink: _GuardedSink) -> bool:
    """Whether an upload whose completion seemed to fail completed all the same (the store
    handled the request, its response was lost): the object at `path` is as long as what was
    written and ends with the same bytes (a pack's last bytes hold the digest of its index)."""
    try:
        fs.invalidate_cache(path)
        if fs.size(path) != sink.size:
            return False
        return bool(fs.cat_file(path, start=sink.size - len(sink.tail), end=sink.size) == sink.tail)
    except Exception:
        return False


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
    sweep(folder, prefix=f".{os.path.basename(path)}.")  # what a killed write of this pack left
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
