"""Writing into torch's and triton's cache folders: atomically, inside the folder, under locks.

A reader (torch, triton, another rank) sees a cache file whole or not at all: every file is
written to a hidden temporary name beside its target and renamed over it, as torch and triton
write their own cache files. A writer killed mid-write leaves its hidden temporary behind;
the next writer into that folder removes it once it is an hour old.

Nothing is written outside the cache folder, even while someone else changes what is in it:
the cache folder is opened once (and must be the user's: `open_root`), each folder below it
is opened relative to its parent without following a symlink, and every file is created,
renamed, linked, read and removed relative to its folder's descriptor. A folder swapped for a
symlink before atpack opens it is refused; one swapped after that is no longer reachable by
its name, and atpack goes on writing into the folder it opened, which was inside.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import itertools
import logging
import os
import re
import resource
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator

from .atomic import STALE_SECONDS, sweep
from .errors import (
    AtpackError,
    CacheFileError,
    FileChangedMeanwhileError,
    FileCreatedMeanwhileError,
    StorageError,
    UnsafeContentError,
)

__all__ = ["STALE_SECONDS", "CacheDir", "FileWrite", "Writes", "open_root", "sweep"]

log = logging.getLogger(__name__)

_TMP_PREFIX = ".atpack-"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO for reading must not wait for a writer
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW
_NOT_A_FOLDER = (errno.ENOTDIR, errno.ELOOP)  # what opening a symlink with _FOLDER fails with


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


def open_root(path: str, *, create: bool) -> int | None:
    """A descriptor of the cache folder `path`, or None where there is none (with `create`, it
    is made, with its parents and the default permissions, as torch makes it).

    The folder must belong to the effective user: one that another user made (say a
    ``/tmp/torchinductor_<you>`` made before you) is refused, as is a `path` that is a symlink
    owned by another user than you or root (planted in a shared ``/tmp``). A symlink you made
    is followed (a cache on a bigger disk), and so are the folders above `path`: they are the
    caller's own choice.
    """
    euid = os.geteuid()
    for _ in range(3):  # looked at again when it changed between the look and the open
        try:
            before = os.lstat(path)
        except FileNotFoundError:
            if not create:
                return None
            _make_root(path)
            continue
        except OSError as e:
            raise StorageError(f"{path}: {e.strerror or e}") from e
        link = stat.S_ISLNK(before.st_mode)
        if link and before.st_uid not in (euid, 0):
            raise UnsafeContentError(
                f"refusing cache folder {path}: a symlink owned by uid {before.st_uid}, another user;"
                f" use a folder you own (set TORCHINDUCTOR_CACHE_DIR or TRITON_CACHE_DIR)"
            )
        try:
            fd = os.open(path, _FOLDER & ~_NOFOLLOW if link else _FOLDER)
        except FileNotFoundError as e:
            if link:
                raise StorageError(f"{path}: a symlink to a folder that does not exist") from e
            continue
        except OSError as e:
            raise StorageError(f"{path}: cannot open the cache folder: {e.strerror or e}") from e
        if _unchanged(path, before, fd, link):
            return _owned(path, fd, euid)
        os.close(fd)
    raise StorageError(f"{path}: the cache folder was replaced each time it was opened")


def _make_root(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{path}: cannot create folder: {e.strerror or e}") from e


def _unchanged(path: str, before: os.stat_result, fd: int, link: bool) -> bool:
    """Whether what was opened is what was looked at: the same folder, or the same link."""
    try:
        now = os.lstat(path) if link else os.fstat(fd)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)


def _owned(path: str, fd: int, euid: int) -> int:
    owner = os.fstat(fd).st_uid
    if owner != euid:
        os.close(fd)
        raise UnsafeContentError(
            f"refusing cache folder {path}: owned by uid {owner}, not by you (uid {euid});"
            f" use a folder you own (set TORCHINDUCTOR_CACHE_DIR or TRITON_CACHE_DIR)"
        )
    return fd


def _refuse_non_folder(parent: int, name: str, path: str, error: OSError) -> None:
    """Raise for what made opening `name` as a folder fail: a symlink, or a file; return where it
    is a folder (again) or gone, as someone changed it meanwhile."""
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise StorageError(f"{path}: {e.strerror or e}") from e
    if stat.S_ISLNK(mode):
        raise UnsafeContentError(f"refusing to write through {path}: it is a symlink") from error
    if not stat.S_ISDIR(mode):
        raise StorageError(f"{path}: {error.strerror or error}") from error


def is_symlink(folder: int, name: str) -> bool:
    """Whether `name` in the open folder `folder` is a symlink (never followed)."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


class _OpenFolders:
    """The folder descriptors every CacheDir of the process keeps open, keyed by (CacheDir,
    folder), least recently used first, within one budget: a quarter of the process's descriptor
    limit (at most 4096), however many cache folders a populate writes into. Each entry holds its
    descriptor and how many operations use it now: those are never closed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: collections.OrderedDict[tuple[int, str], list[int]] = collections.OrderedDict()
        self.limit = 4096
        self.abandoned: list[int] = []  # CacheDirs collected unclosed: their folders are closed later

    def set_limit(self) -> None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.limit = 4096 if soft == resource.RLIM_INFINITY else max(16, min(4096, soft // 4))

    def close(self, cache_dir: int) -> None:
        """Close every folder of one CacheDir. Called with `lock` held."""
        for key in [key for key in self.entries if key[0] == cache_dir]:
            os.close(self.entries.pop(key)[0])

    def evict(self) -> None:
        """Close the folders of abandoned CacheDirs, then the least recently used folders no
        operation is using, down to the limit (a cache folder itself stays open until its
        CacheDir is closed). Called with `lock` held."""
        while self.abandoned:
            self.close(self.abandoned.pop())
        excess = len(self.entries) - self.limit
        if excess <= 0:
            return
        idle = []
        for key, (_, users) in self.entries.items():
            if users == 0 and key[1]:
                idle.append(key)
                if len(idle) == excess:
                    break
        for key in idle:
            os.close(self.entries.pop(key)[0])


_FOLDERS = _OpenFolders()
_cache_dir_ids = itertools.count()


class CacheDir:
    """A cache folder that files are written into, never outside of.

    A relative path must not climb out (``..``, absolute paths, NUL bytes), and no folder below
    the cache folder may be a symlink: every folder is opened without following one, when
    populate plans (`path`, `state`) and again when it writes, whatever changed in between.
    Open folders are kept (the most recently used ones, within one budget for the whole process:
    `_OpenFolders`) until `close`; a CacheDir is also a context manager that closes them.
    Threads may share a CacheDir (and close it once they are done).
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._prefix = self.root.rstrip("/") + "/"
        self._id = next(_cache_dir_ids)  # its open folders' key in _FOLDERS
        _FOLDERS.set_limit()
        self._absent: set[str] = set()  # folders known not to exist (until made)
        self._swept: set[str] = set()  # folders cleared of killed writers' temporaries, or made here
        self._paths: dict[str, tuple[str, str]] = {}  # path() -> (folder, name): checked once

    def __enter__(self) -> CacheDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # a safety net for callers that do not close: never takes the lock (the collector may
        # run while this thread holds it), the next CacheDir to open a folder closes them
        if hasattr(self, "_id"):
            _FOLDERS.abandoned.append(self._id)

    def close(self) -> None:
        """Close every open folder (a later call opens them again)."""
        with _FOLDERS.lock:
            _FOLDERS.close(self._id)

    def path(self, relative: str) -> str:
        """The absolute path of `relative` inside this folder, after refusing a path that
        leaves it and a symlinked folder on the way."""
        _check_relative(relative)
        folder, _, name = relative.rpartition("/")
        self._release(self._planned(folder), folder)
        path = self._prefix + relative
        self._paths[path] = (folder, name)
        return path

    def state(self, path: str, *, data: bytes | None = None, digest: str | None = None, size: int = -1) -> str:
        """``"absent"``, ``"same"`` (identical content) or ``"different"``."""
        folder, name = self._split(path)
        fd = self._planned(folder)
        if fd is None:
            return "absent"
        try:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return "absent"
            except OSError as e:
                raise StorageError(f"{path}: {e.strerror or e}") from e
            expected = len(data) if data is not None else size
            if not stat.S_ISREG(st.st_mode) or (expected >= 0 and st.st_size != expected):
                return "different"
            content = _read_file(fd, name, path)
        finally:
            self._release(fd, folder)
        if content is None:
            return "absent"
        if data is not None:
            return "same" if content == data else "different"
        return "same" if digest == "sha256:" + hashlib.sha256(content).hexdigest() else "different"

    def read(self, path: str) -> bytes | None:
        """The content of the regular file `path`, or None if there is none. A symlink there is
        never followed, and anything but a regular file (a folder, a FIFO) is refused."""
        folder, name = self._split(path)
        fd = self._acquire(folder, create=False)
        if fd is None:
            return None
        try:
            return _read_file(fd, name, path)
        finally:
            self._release(fd, folder)

    def write(
        self, path: str, data: bytes | memoryview, *, create: bool = False, replacing: bytes | None = None
    ) -> None:
        """Write `data` to `path` through a temporary file in the same folder and a rename; with
        `create`, only where no file is there when it lands (`FileCreatedMeanwhileError`); with
        `replacing`, only where the file still holds those bytes (`FileChangedMeanwhileError`:
        another writer, torch, replaced it since it was read)."""
        folder, name = self._split(path)
        fd = self._writable(folder)
        try:
            _write_file(fd, name, data, path, create=create, replacing=replacing)
        finally:
            self._release(fd, folder)

    def link(self, existing: str, new: str) -> str:
        """Make the relative path `new` the same file as the relative path `existing`: a hard
        link, or a copy (written as `write` does) where the filesystem has none. A file already
        at `new` is never replaced. Returns ``"linked"``, ``"copied"``, ``"same"`` (`new` was
        already there with that content) or ``"different"`` (it was there with other content,
        and kept)."""
        source, target = self.path(existing), self.path(new)
        src_folder, src_name = self._split(source)
        dst_folder, dst_name = self._split(target)
        src = self._acquire(src_folder, create=False)
        if src is None:
            raise StorageError(f"{source}: no such file")
        try:
            dst = self._writable(dst_folder)
            try:
                return _link_file(src, src_name, dst, dst_name, source, target)
            finally:
                self._release(dst, dst_folder)
        finally:
            self._release(src, src_folder)

    def _make_folder(self, folder: str) -> None:
        """Make `folder` (an absolute path in this cache folder) and the folders above it."""
        relative = "" if folder == self.root else self._relative(folder)
        self._release(self._writable(relative), relative)

    @contextlib.contextmanager
    def locked(self, relative: str) -> Iterator[None]:
        """An exclusive advisory lock (``flock``) on the file `relative`, created if missing,
        readable by this user alone: anyone who can open a lock file can hold it forever, so one
        another user owns is refused, and a lock held longer than `LOCK_WAIT_S` is an error, not
        a wait without end."""
        path = self.path(relative)
        folder, name = self._split(path)
        dir_fd = self._writable(folder)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o600, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeContentError(f"refusing to lock {path}: it is a symlink") from e
            raise StorageError(f"{path}: cannot lock: {e.strerror or e}") from e
        finally:
            self._release(dir_fd, folder)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CacheFileError(f"refusing to lock {path}: not a regular file")
            if st.st_uid != os.getuid():
                raise UnsafeContentError(
                    f"refusing to lock {path}: it belongs to another user (uid {st.st_uid}), who could hold it forever"
                )
            _flock(fd, path)
            yield
        finally:
            os.close(fd)

    # ----------------------------------------------------------------- open folders

    def _relative(self, path: str) -> str:
        """An absolute `path` in this cache folder, relative to it."""
        if not path.startswith(self._prefix):
            raise UnsafeContentError(f"refusing cache path {path!r}: not inside {self.root}")
        relative = path[len(self._prefix) :]
        _check_relative(relative)
        return relative

    def _split(self, path: str) -> tuple[str, str]:
        """(folder relative to the cache folder, file name) of an absolute `path` in it."""
        known = self._paths.get(path)
        if known is not None:
            return known
        folder, _, name = self._relative(path).rpartition("/")
        return folder, name

    def _writable(self, folder: str) -> int:
        """`folder`, made if missing, its killed writers' temporaries removed (once)."""
        fd = self._acquire(folder, create=True)
        assert fd is not None
        if folder in self._swept:
            return fd
        with _FOLDERS.lock:
            first = folder not in self._swept
            self._swept.add(folder)
        if first:
            sweep(self._prefix + folder if folder else self.root, _TMP_PREFIX, dir_fd=fd)
        return fd

    def _acquire(self, folder: str, *, create: bool) -> int | None:
        """The descriptor of `folder` (relative; ``""`` is the cache folder), in use until
        `_release`; None where it does not exist (and `create` is not set)."""
        key = (self._id, folder)
        with _FOLDERS.lock:
            entry = _FOLDERS.entries.get(key)
            if entry is not None:
                entry[1] += 1
                _FOLDERS.entries.move_to_end(key)
                return entry[0]
        fd = self._open_folder(folder, create)
        if fd is None:
            return None
        with _FOLDERS.lock:
            self._absent.discard(folder)
            entry = _FOLDERS.entries.get(key)
            if entry is None:
                entry = _FOLDERS.entries[key] = [fd, 0]
            else:  # another thread opened it meanwhile
                os.close(fd)
            entry[1] += 1
            _FOLDERS.evict()
            return entry[0]

    def _planned(self, folder: str) -> int | None:
        """`_acquire` of an existing folder, for planning: a folder found missing is taken to
        stay missing until this CacheDir makes it (a fresh cache has thousands of files to plan,
        in hundreds of folders). What is read or written never relies on that."""
        if folder in self._absent:
            return None
        fd = self._acquire(folder, create=False)
        if fd is None:
            self._absent.add(folder)
        return fd

    def _release(self, fd: int | None, folder: str = "") -> None:
        if fd is None:
            return
        with _FOLDERS.lock:
            entry = _FOLDERS.entries.get((self._id, folder))
            if entry is not None and entry[0] == fd:
                entry[1] -= 1

    def _open_folder(self, folder: str, create: bool) -> int | None:
        if not folder:
            return open_root(self.root, create=create)
        parent_folder, _, name = folder.rpartition("/")
        parent = self._acquire(parent_folder, create=create)
        if parent is None:
            return None
        try:
            return self._open_child(parent, name, folder, create)
        finally:
            self._release(parent, parent_folder)

    def _open_child(self, parent: int, name: str, folder: str, create: bool) -> int | None:
        path = self._prefix + folder
        for _ in range(3):  # again when someone else made, removed or replaced it meanwhile
            try:
                return os.open(name, _FOLDER, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    return None
            except OSError as e:
                if e.errno not in _NOT_A_FOLDER:
                    raise StorageError(f"{path}: {e.strerror or e}") from e
                _refuse_non_folder(parent, name, path, e)
                continue  # a folder again, or gone: it changed since the open, look again
            try:
                os.mkdir(name, dir_fd=parent)
                self._swept.add(folder)  # made now: no killed writer left anything in it
            except FileExistsError:
                pass
            except OSError as e:
                raise StorageError(f"{path}: cannot create folder: {e.strerror or e}") from e
        raise StorageError(f"{path}: changed each time it was opened")


_PLAIN = re.compile(r"(?!\.\.?(?:/|$))[^/\x00\\]{1,255}(?:/(?!\.\.?(?:/|$))[^/\x00\\]{1,255})*")
"""A plain relative path: what `_check_relative` accepts, matched at once (every file written is checked)."""


def _check_relative(relative: str) -> None:
    if _PLAIN.fullmatch(relative):
        return
    if not relative or "\x00" in relative or relative.startswith("/") or "\\" in relative:
        raise UnsafeContentError(f"refusing cache path {relative!r}: not a plain relative path")
    parts = relative.split("/")
    if "" in parts or "." in parts or ".." in parts:
        raise UnsafeContentError(f"refusing cache path {relative!r}: it leaves the cache folder")
    if max(map(len, parts)) > 255:
        raise UnsafeContentError(f"refusing cache path {relative!r}: a name longer than 255 characters")


def _read_file(folder: int, name: str, path: str) -> bytes | None:
    """The content of the regular file `name` in `folder`, or None if there is none."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeContentError(f"refusing to read {path}: it is a symlink") from e
        if e.errno == errno.EISDIR:
            raise CacheFileError(f"{path}: a folder, where a file belongs") from e
        raise StorageError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        _check_regular(fd, path)
        return _read_all(fd, path)
    finally:
        os.close(fd)


LOCK_WAIT_S = 60.0
"""How long a lock another process holds is waited for (a merge holds it for milliseconds)."""


def _flock(fd: int, path: str) -> None:
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StorageError(
                    f"{path}: held by another process for over {LOCK_WAIT_S:.0f} s; is one stuck? (remove the file "
                    "once no atpack runs)"
                ) from None
            time.sleep(0.02)
        except OSError as e:
            raise StorageError(f"{path}: cannot lock: {e.strerror or e}") from e


def _check_regular(fd: int, path: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise CacheFileError(f"{path}: {what}, where a file belongs")
    return st


def _read_all(fd: int, path: str) -> bytes:
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise StorageError(f"{path}: cannot read: {e.strerror or e}") from e


def _write_file(
    folder: int, name: str, data: bytes | memoryview, path: str, *, create: bool = False, replacing: bytes | None = None
) -> None:
    """Write `name` in `folder` through a hidden temporary beside it and a rename; with `create`,
    through a hard link, which never replaces a file another writer made meanwhile (a rename
    would), and a rename only where the filesystem has no hard links."""
    tmp = _temporary_name()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=folder)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if replacing is not None and _read_file(folder, name, path) != replacing:
            raise FileChangedMeanwhileError(f"{path}: another writer replaced it meanwhile")
        if not create or not _linked(folder, tmp, name, path, data):
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException as e:  # Ctrl-C included: no temporary is left in torch's folders
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder)
        if isinstance(e, OSError) and not isinstance(e, AtpackError):
            raise StorageError(f"{path}: cannot write: {e.strerror or e}") from e
        raise


def _linked(folder: int, tmp: str, name: str, path: str, data: bytes | memoryview) -> bool:
    """Make `tmp` `name` if no file is there (and drop `tmp`); False where links are not made. A
    file another writer made meanwhile with these very bytes (a second populate of the same
    pack) is as good as written; one with other bytes is theirs (`FileCreatedMeanwhileError`)."""
    try:
        os.link(tmp, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
    except FileExistsError:
        there = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if not (stat.S_ISREG(there.st_mode) and there.st_size == len(data) and _read_file(folder, name, path) == data):
            raise FileCreatedMeanwhileError(f"{path}: another writer created it meanwhile; theirs is kept") from None
    except OSError as e:
        if e.errno in _NO_HARD_LINKS:
            return False
        raise
    os.unlink(tmp, dir_fd=folder)
    return True


_NO_HARD_LINKS = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


def _link_file(src: int, src_name: str, dst: int, dst_name: str, source: str, target: str) -> str:
    """`CacheDir.link` on open folders: the source is opened (never through a symlink) and
    checked to be a regular file; the link made must be that very file, or it is undone."""
    try:
        fd = os.open(src_name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=src)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeContentError(f"refusing to link {source}: it is a symlink") from e
        raise StorageError(f"{source}: cannot link: {e.strerror or e}") from e
    try:
        st = _check_regular(fd, source)
        try:
            os.link(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
        except FileExistsError:
            return _compare(dst, dst_name, st, fd, target)
        except OSError as e:
            if e.errno not in _NO_HARD_LINKS:
                raise StorageError(f"{target}: cannot link: {e.strerror or e}") from e
            return _copy(fd, source, dst, dst_name, target)
        made = os.stat(dst_name, dir_fd=dst, follow_symlinks=False)
        if (made.st_dev, made.st_ino) != (st.st_dev, st.st_ino):  # the source was swapped meanwhile
            os.unlink(dst_name, dir_fd=dst)
            raise UnsafeContentError(f"refusing to link {source}: it was replaced while it was linked")
        return "linked"
    finally:
        os.close(fd)


def _compare(dst: int, dst_name: str, st: os.stat_result, fd: int, target: str) -> str:
    """Whether what is already at `dst_name` is the open source file's content: "same" or "different"."""
    try:
        there = os.stat(dst_name, dir_fd=dst, follow_symlinks=False)
    except OSError as e:  # gone again: another writer is at work there
        raise StorageError(f"{target}: cannot link: changed meanwhile ({e.strerror or e})") from e
    if (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino):
        return "same"
    if not stat.S_ISREG(there.st_mode) or there.st_size != st.st_size:
        return "different"
    return "same" if _read_file(dst, dst_name, target) == _read_all(fd, target) else "different"


def _copy(fd: int, source: str, dst: int, dst_name: str, target: str) -> str:
    data = _read_all(fd, source)
    try:
        there = os.stat(dst_name, dir_fd=dst, follow_symlinks=False)
    except FileNotFoundError:
        _write_file(dst, dst_name, data, target)
        return "copied"
    if stat.S_ISREG(there.st_mode) and _read_file(dst, dst_name, target) == data:
        return "same"
    return "different"


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
        *,
        create: bool = False,
    ) -> None:
        """Write `data` to `path` in `root` (with `create`, only where no file is there: see
        `CacheDir.write`); call `done` once it is there, or `failed` with the error if it cannot
        be written (without `failed`, the error is raised)."""
        if self._pool is None:
            start = time.perf_counter()
            _write_one((root, path, data, done, failed, create))
            self._seconds += time.perf_counter() - start
            self._timed += 1
            if self._timed == self.PROBE and self._seconds / self._timed > self.SLOW:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.THREADS, thread_name_prefix="atpack-write")
                self.threaded = True
            return
        self._batch.append((root, path, data, done, failed, create))
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


_Write = tuple[CacheDir, str, bytes, Callable[[], None], Callable[[AtpackError], None] | None, bool]


def _write_one(write: _Write) -> None:
    root, path, data, done, failed, create = write
    try:
        root.write(path, data, create=create)
    except AtpackError as e:
        if failed is None:
            raise
        failed(e)
    else:
        done()


def _write_batch(batch: list[_Write]) -> None:
    for write in batch:
        _write_one(write)


_temporary_names = itertools.count()
_temporary_prefix = ""


def _temporary_name() -> str:
    """A name no other writer uses: this process's id, a random tag, a counter."""
    global _temporary_prefix
    if not _temporary_prefix.startswith(f"{_TMP_PREFIX}{os.getpid()}-"):  # new process (fork)
        _temporary_prefix = f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
    return f"{_temporary_prefix}{next(_temporary_names)}.tmp"
