"""Writing into torch's and triton's cache folders: atomically, inside the folder, under locks.

A reader (torch, triton, another rank) sees a cache file whole or not at all: every file is
written to a hidden temporary name beside its target and renamed over it, as torch and triton
write their own cache files. A writer killed mid-write leaves its hidden temporary behind;
the next writer into that folder removes it once it is an hour old.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import itertools
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator

from .errors import AtpackError, CacheFileError, StorageError, UnsafeContentError

__all__ = ["CacheDir", "FileWrite", "Writes"]

log = logging.getLogger(__name__)

_TMP_PREFIX = ".atpack-"


@dataclasses.dataclass(frozen=True)
class FileWrite:
    """One file populate would write: its content inline (`data`) or a blob (`blob`).

    `last` files make the others visible to their reader (Triton's ``__grp__`` file) and are
    written after every other file. `replace` allows replacing a different existing file
    (for files atpack derives for the target folder, never for results).
    """

    path: str
    data: bytes | None = None
    blob: str | None = None
    size: int = 0
    last: bool = False
    replace: bool = False


class CacheDir:
    """A cache folder that files are written into, never outside of.

    Paths are checked once per folder: a relative path must not climb out (``..``, absolute
    paths, NUL bytes) and no folder on the way may be a symlink placed there to redirect
    writes elsewhere.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._checked: set[str] = set()  # folders known not to be symlinks
        self._made: set[str] = set()  # folders known to exist
        self._absent: set[str] = set()  # folders known not to exist (until made)

    def path(self, relative: str) -> str:
        """The absolute path of `relative` inside this folder."""
        if not relative or "\x00" in relative or relative.startswith("/") or "\\" in relative:
            raise UnsafeContentError(f"refusing cache path {relative!r}: not a plain relative path")
        parts = relative.split("/")
        if "" in parts or "." in parts or ".." in parts:
            raise UnsafeContentError(f"refusing cache path {relative!r}: it leaves the cache folder")
        if max(map(len, parts)) > 255:
            raise UnsafeContentError(f"refusing cache path {relative!r}: a name longer than 255 characters")
        path = f"{self.root}/{relative}"
        self._check_folder(path.rpartition("/")[0])
        return path

    def _check_folder(self, folder: str) -> None:
        if folder in self._checked:
            return
        if folder != self.root:
            self._check_folder(os.path.dirname(folder))
            if os.path.islink(folder):
                raise UnsafeContentError(f"refusing to write through {folder}: it is a symlink")
        self._checked.add(folder)

    def state(self, path: str, *, data: bytes | None = None, digest: str | None = None, size: int = -1) -> str:
        """``"absent"``, ``"same"`` (identical content) or ``"different"``."""
        folder = path.rpartition("/")[0]
        if folder in self._absent:
            return "absent"
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if folder not in self._made and not os.path.isdir(folder):
                self._absent.add(folder)  # a fresh cache: skip the lookups of its other files
            return "absent"
        except OSError as e:
            raise StorageError(f"{path}: {e.strerror or e}") from e
        expected = len(data) if data is not None else size
        if not stat.S_ISREG(st.st_mode) or (expected >= 0 and st.st_size != expected):
            return "different"
        content = self.read(path)
        if content is None:
            return "absent"
        if data is not None:
            return "same" if content == data else "different"
        return "same" if digest == "sha256:" + hashlib.sha256(content).hexdigest() else "different"

    def read(self, path: str) -> bytes | None:
        """The content of the regular file `path`, or None if there is none. A symlink there is
        never followed, and anything but a regular file (a folder, a FIFO) is refused."""
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeContentError(f"refusing to read {path}: it is a symlink") from e
            if e.errno == errno.EISDIR:
                raise CacheFileError(f"{path}: a folder, where a file belongs") from e
            raise StorageError(f"{path}: cannot read: {e.strerror or e}") from e
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
                raise CacheFileError(f"{path}: {what}, where a file belongs")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as e:
            raise StorageError(f"{path}: cannot read: {e.strerror or e}") from e
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes | memoryview) -> None:
        """Write `data` to `path` through a temporary file in the same folder and a rename."""
        folder = path.rpartition("/")[0]
        self._make_folder(folder)
        tmp = f"{folder}/{_temporary_name()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"{path}: cannot write: {e.strerror or e}") from e

    def _make_folder(self, folder: str) -> None:
        if folder in self._made:
            return
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise StorageError(f"{folder}: cannot create folder: {e.strerror or e}") from e
        self._check_folder(folder)
        self._made.add(folder)
        self._absent.discard(folder)
        sweep(folder)

    @contextlib.contextmanager
    def locked(self, relative: str) -> Iterator[None]:
        """An exclusive advisory lock (``flock``) on the file `relative`, created if missing."""
        path = self.path(relative)
        self._make_folder(os.path.dirname(path))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeContentError(f"refusing to lock {path}: it is a symlink") from e
            raise StorageError(f"{path}: cannot lock: {e.strerror or e}") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                raise StorageError(f"{path}: cannot lock: {e.strerror or e}") from e
            yield
        finally:
            os.close(fd)


class Writes:
    """Many file writes: one by one while creating a file is quick (a memory filesystem, a fast
    disk: the work is CPU, and threads would only contend for it), on threads once the first
    files show it is slow (a journaled disk, a network filesystem: the calls wait on the
    device, and several can wait at once). `flush` waits for every write so far."""

    PROBE = 64
    SLOW = 150e-6  # seconds per file
    THREADS = 8
    BATCH = 32

    def __init__(self) -> None:
        self._timed = 0
        self._seconds = 0.0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._batch: list[_Write] = []
        self._pending: list[concurrent.futures.Future[None]] = []
        self.threaded = False

    def add(
        self,
        root: CacheDir,
        path: str,
        data: bytes,
        done: Callable[[], None],
        failed: Callable[[AtpackError], None] | None = None,
    ) -> None:
        """Write `data` to `path` in `root`; call `done` once it is there, or `failed` with the
        error if it cannot be written (without `failed`, the error is raised)."""
        if self._pool is None:
            start = time.perf_counter()
            _write_one((root, path, data, done, failed))
            self._seconds += time.perf_counter() - start
            self._timed += 1
            if self._timed == self.PROBE and self._seconds / self._timed > self.SLOW:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.THREADS, thread_name_prefix="atpack-write")
                self.threaded = True
            return
        self._batch.append((root, path, data, done, failed))
        if len(self._batch) >= self.BATCH:
            self._submit()

    def flush(self) -> None:
        self._submit()
        pending, self._pending = self._pending, []
        concurrent.futures.wait(pending)
        for future in pending:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self) -> None:
        if self._batch and self._pool is not None:
            self._pending.append(self._pool.submit(_write_batch, self._batch))
            self._batch = []


_Write = tuple[CacheDir, str, bytes, Callable[[], None], Callable[[AtpackError], None] | None]


def _write_one(write: _Write) -> None:
    root, path, data, done, failed = write
    try:
        root.write(path, data)
    except AtpackError as e:
        if failed is None:
            raise
        failed(e)
    else:
        done()


def _write_batch(batch: list[_Write]) -> None:
    for write in batch:
        _write_one(write)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO for reading must not wait for a writer
_temporary_names = itertools.count()
_temporary_prefix = ""


STALE_SECONDS = 3600.0
"""A temporary file of ours untouched this long belongs to a writer that was killed: no write
pauses that long, so a later writer into the same folder removes it."""


def sweep(folder: str, prefix: str = _TMP_PREFIX) -> None:
    """Remove the stale temporary files (`<prefix>….tmp`) that killed writers left in `folder`."""
    cutoff = time.time() - STALE_SECONDS
    try:
        with os.scandir(folder) as entries:
            stale = [
                e.path
                for e in entries
                if e.name.startswith(prefix)
                and e.name.endswith(".tmp")
                and e.is_file(follow_symlinks=False)
                and e.stat(follow_symlinks=False).st_mtime < cutoff
            ]
    except OSError:
        return  # sweeping is housekeeping: never a reason to fail a write
    for path in stale:
        with contextlib.suppress(OSError):
            os.unlink(path)
            log.info("removed %s, left by a killed writer", path)


def _temporary_name() -> str:
    """A name no other writer uses: this process's id, a random tag, a counter."""
    global _temporary_prefix
    if not _temporary_prefix.startswith(f"{_TMP_PREFIX}{os.getpid()}-"):  # new process (fork)
        _temporary_prefix = f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
    return f"{_temporary_prefix}{next(_temporary_names)}.tmp"
