"""Reading cache folders for collection, never outside them.

A cache folder can hold what someone else put there: a symlink to a private key, a kernel
folder that is a link to ``~/.ssh``, a FIFO that blocks whoever opens it. Collection reads
only through this module: the cache folder is opened once (and must be the user's, as for
writing: `atpack.files.open_root`), each folder below it without following a symlink, and
each file with ``O_NOFOLLOW | O_NONBLOCK``, read only when it is a regular file of at most
`MAX_FILE` bytes. Anything else is refused with a `CacheFileError`, which collection reports
as skipped.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import CacheFileError
from .files import is_symlink, open_root

__all__ = ["MAX_FILE", "Folder", "open_cache", "read_file"]

MAX_FILE = 1 << 30
"""The largest cache file collection reads (1 GiB): a compiled kernel is megabytes, a result
kilobytes. A larger file is skipped rather than read into memory (packs have limits of their own)."""

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_SYMLINK = "a symlink, not followed out of the cache folder"


class Folder:
    """A folder of a cache, open: what is in it, its sub-folders, its files. `path` and
    `relative` (to the cache folder) name it in messages."""

    def __init__(self, fd: int, path: str, relative: str = "") -> None:
        self.fd, self.path, self.relative = fd, path, relative

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def names(self) -> list[str]:
        """What the folder holds, sorted."""
        try:
            return sorted(os.listdir(self.fd))
        except OSError as e:
            raise CacheFileError(f"{self.relative or self.path}: cannot list: {e.strerror or e}") from e

    def folder(self, name: str) -> Folder | None:
        """The sub-folder `name`, opened, or None where `name` is not a folder (a file, or
        gone). A symlink is refused, never followed."""
        relative = self._relative(name)
        try:
            fd = os.open(name, _FOLDER, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                if is_symlink(self.fd, name):
                    raise CacheFileError(f"{relative}: {_SYMLINK}") from e
                return None
            raise CacheFileError(f"{relative}: {e.strerror or e}") from e
        return Folder(fd, os.path.join(self.path, name), relative)

    def read(self, name: str, limit: int = MAX_FILE) -> bytes:
        """The content of the regular file `name`: a symlink, a FIFO, a socket, a device or a
        folder is refused without waiting on it, and so is a file of more than `limit` bytes."""
        return _read(name, self._relative(name), limit, self.fd)

    def _relative(self, name: str) -> str:
        return f"{self.relative}/{name}" if self.relative else name


def read_file(path: str, limit: int = MAX_FILE) -> bytes:
    """A cache file read as `Folder.read` reads one (never a symlink, a FIFO, a device, nor more
    than `limit` bytes), by its path: for a file found by listing its folder."""
    return _read(path, path, limit, None)


def _read(name: str, relative: str, limit: int, folder: int | None) -> bytes:
    try:
        fd = os.open(name, _FILE, dir_fd=folder)
    except OSError as e:
        raise CacheFileError(f"{relative}: {_SYMLINK if e.errno == errno.ELOOP else e.strerror or e}") from e
    try:
        mode, size = (st := os.fstat(fd)).st_mode, st.st_size
        if not stat.S_ISREG(mode):
            raise CacheFileError(f"{relative}: {_what(mode)}, not a regular file")
        if size > limit:
            raise CacheFileError(f"{relative}: {size:,} bytes, more than the {limit:,} collection reads")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise CacheFileError(f"{relative}: grew past the {limit:,} bytes collection reads")
        return b"".join(chunks)
    except OSError as e:
        raise CacheFileError(f"{relative}: cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)


def open_cache(path: str) -> Folder | None:
    """The cache folder `path` opened for reading, or None where there is none. It must be the
    user's (`atpack.files.open_root`): another user's folder raises `UnsafeContentError`."""
    fd = open_root(os.path.abspath(path), create=False)
    return None if fd is None else Folder(fd, os.path.abspath(path))


def _what(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISLNK: "a symlink"}
    return next((what for test, what in kinds.items() if test(mode)), "a device")
