"""Writing into torch's and triton's cache folders: atomically, inside the folder, under locks.

A reader (torch, triton, another rank) sees a cache file whole or not at all: every file is
written to a hidden temporary name beside its target and renamed over it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator

from .errors import StorageError, UnsafeContentError

__all__ = ["FileWrite", "atomic_write", "file_state", "locked", "target_path"]

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


def target_path(root: str, relative: str) -> str:
    """`root`/`relative`, refusing anything that would land outside `root` (``..``,
    absolute paths, NUL bytes, symlinks inside the folder that point elsewhere)."""
    if not relative or "\x00" in relative or os.path.isabs(relative):
        raise UnsafeContentError(f"refusing cache path {relative!r}: not a relative path")
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeContentError(f"refusing cache path {relative!r}: it leaves the cache folder")
    root_real = os.path.realpath(root)
    path = os.path.join(root_real, *parts)
    parent = os.path.dirname(path)
    if os.path.lexists(parent) and os.path.realpath(parent) != parent:
        raise UnsafeContentError(f"refusing cache path {relative!r}: {parent} is a symlink")
    if os.path.islink(path):
        raise UnsafeContentError(f"refusing cache path {relative!r}: the target is a symlink")
    return path


def file_state(path: str, *, data: bytes | None = None, digest: str | None = None, size: int = -1) -> str:
    """``"absent"``, ``"same"`` (identical content) or ``"different"``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "absent"
    except OSError as e:
        raise StorageError(f"{path}: {e.strerror or e}") from e
    expected = len(data) if data is not None else size
    if expected >= 0 and st.st_size != expected:
        return "different"
    with open(path, "rb") as f:
        content = f.read()
    if data is not None:
        return "same" if content == data else "different"
    return "same" if digest == "sha256:" + hashlib.sha256(content).hexdigest() else "different"


def atomic_write(path: str, data: bytes | memoryview, *, exclusive: bool = False) -> bool:
    """Write `data` to `path` through a temporary file and a rename.

    With `exclusive`, an existing file is left alone (and False returned): the rename is done
    with ``link`` + ``unlink`` so that a file another process created meanwhile is not
    replaced.
    """
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{folder}: cannot create folder: {e.strerror or e}") from e
    tmp = os.path.join(folder, f"{_TMP_PREFIX}{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if os.path.lexists(path):  # no hard links here: check, then rename
                return False
            os.replace(tmp, path)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return True
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise StorageError(f"{path}: cannot write: {e.strerror}") from e
        raise StorageError(f"{path}: {e.strerror or e}") from e


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) on `path`, created if missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
