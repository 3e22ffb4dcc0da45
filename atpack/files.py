"""Writing into torch's and triton's cache folders: atomically, inside the folder, under locks.

A reader (torch, triton, another rank) sees a cache file whole or not at all: every file is
written to a hidden temporary name beside its target and renamed over it (or, when an existing
file must win, hard-linked into place, which fails if the name is taken).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator

from .errors import StorageError, UnsafeContentError

__all__ = ["CacheDir", "FileWrite"]

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

    def path(self, relative: str) -> str:
        """The absolute path of `relative` inside this folder."""
        if not relative or "\x00" in relative or relative.startswith("/") or "\\" in relative:
            raise UnsafeContentError(f"refusing cache path {relative!r}: not a plain relative path")
        parts = relative.split("/")
        if any(p in ("", ".", "..") or len(p) > 255 for p in parts):
            raise UnsafeContentError(f"refusing cache path {relative!r}: it leaves the cache folder")
        path = os.path.join(self.root, *parts)
        self._check_folder(os.path.dirname(path))
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
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "absent"
        except OSError as e:
            raise StorageError(f"{path}: {e.strerror or e}") from e
        expected = len(data) if data is not None else size
        if not stat.S_ISREG(st.st_mode) or (expected >= 0 and st.st_size != expected):
            return "different"
        with open(path, "rb") as f:
            content = f.read()
        if data is not None:
            return "same" if content == data else "different"
        return "same" if digest == "sha256:" + hashlib.sha256(content).hexdigest() else "different"

    def write(self, path: str, data: bytes | memoryview, *, exclusive: bool = False) -> bool:
        """Write `data` to `path` through a temporary file and a rename.

        With `exclusive`, an existing file is left alone (and False returned): the file is
        hard-linked into place, which fails if another process created it meanwhile.
        """
        folder = os.path.dirname(path)
        self._make_folder(folder)
        tmp = os.path.join(folder, f"{_TMP_PREFIX}{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if exclusive:
                return _link_into_place(tmp, path)
            os.replace(tmp, path)
            return True
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

    @contextlib.contextmanager
    def locked(self, relative: str) -> Iterator[None]:
        """An exclusive advisory lock (``flock``) on the file `relative`, created if missing."""
        path = self.path(relative)
        self._make_folder(os.path.dirname(path))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _link_into_place(tmp: str, path: str) -> bool:
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):  # no hard links on this filesystem: check, then rename
            return False
        os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return True
