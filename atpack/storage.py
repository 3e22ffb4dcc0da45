"""Byte access to packs on any fsspec filesystem: ranged reads and atomic publishing.

URLs and `storage_options` go to fsspec unchanged, so chained URLs
(``simplecache::s3://bucket/x.atpack``) and every installed protocol work.

Every call to a remote store ends within a deadline (`Retry.deadline`, 60 s unless
``ATPACK_TIMEOUT`` or a `Retry` given says otherwise), with its result or a one-line
`StorageError` naming the URL, what was being done, the cause in atpack's words (a refused
connection, a failed DNS lookup, missing credentials, a timeout: `atpack.causes`) and the
deadline. On top of what the filesystem retries itself (s3fs and botocore retry connection
errors, 5xx responses and cut bodies), a call that still fails with a transient error, or a read
that returns fewer bytes than asked, is tried again with exponential backoff within that deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob as _glob
import io
import logging
import math
import os
import random
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Protocol, TypeVar

from . import atomic, settings
from .causes import Cause, cause_of
from .errors import IsAFolderError, NotFoundError, StorageError, storage_error

__all__ = [
    "RETRY",
    "RangeSource",
    "Retry",
    "Sink",
    "call",
    "default_retry",
    "fetch",
    "glob",
    "is_folder",
    "open_source",
    "present",
    "publish",
    "resolve",
]

_T = TypeVar("_T")

log = logging.getLogger(__name__)


class RangeSource(Protocol):
    """Random access to the bytes of one file."""

    name: str
    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]: ...

    def close(self) -> None: ...


def local_path(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> str | None:
    """The local path `url` names, where it is a path or a ``file://`` URL given no options
    (fsspec, whose import costs a command line more than its own work, is not needed); else None."""
    text = os.fspath(url)
    if storage_options:
        return None
    if text.startswith("file://"):
        return text[len("file://") :] or "/"
    if "::" in text or _PROTOCOL.match(text):
        return None
    return text


_PROTOCOL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def resolve(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path for `url`; options are passed through unchanged."""
    import fsspec

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
            # without waiting: a FIFO opened for reading waits for a writer that may never come
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError as e:
            raise _no_local_pack(path) from e
        except OSError as e:
            raise storage_error(path, e) from e
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self._fd)
            self._fd = -1
            raise StorageError(f"{path}: not a regular file (a FIFO, socket or device never ends as a pack does)")
        self.size = st.st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.read(offset, length) for offset, length in ranges]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _no_local_pack(path: str) -> NotFoundError:
    """A pack file that is not there, said so that the step meant to write it gets checked: a
    pull or a pack that failed leaves nothing at its -o (the error of the command that reads it
    is then the user's first sight of that failure)."""
    folder = os.path.dirname(os.path.abspath(path))
    missing = "no such file" if os.path.isdir(folder) else f"no folder {folder}"
    return NotFoundError(
        f"no pack at {path}: {missing} (check that the command meant to write it, such as atpack pull -o, succeeded)"
    )


@dataclasses.dataclass(frozen=True)
class Retry:
    """How calls to a remote store are retried, and how long they may take.

    A call is tried up to `attempts` times: again after a transient error (anything but a
    missing file, missing or refused credentials, a host name DNS does not know, a failed TLS
    handshake or a bad argument: see `atpack.causes`), and, for a read, again when it returns
    fewer bytes than asked (short of the end of the file). The first retry waits
    `backoff` seconds, each next one twice as long (up to `max_backoff`), each wait drawn
    between half and all of that. No call takes more than `deadline` seconds, its waits and
    attempts together: a request still running at the deadline is cancelled (async
    filesystems: s3fs, gcsfs, http) or left to end on a thread of its own (others), and the
    call is a `StorageError` at once. An infinite deadline (``math.inf``) sets no time limit.
    """

    attempts: int = 5
    backoff: float = 0.1
    max_backoff: float = 2.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0 or not self.deadline > 0:
            raise ValueError(f"invalid {self}")


RETRY = Retry()
"""The policy used where none is given, its deadline replaced by ``ATPACK_TIMEOUT``'s when set
(see `default_retry`)."""


def default_retry() -> Retry:
    """`RETRY`, with the deadline ``ATPACK_TIMEOUT`` sets (seconds; ``inf`` for none), if set."""
    seconds = settings.timeout()
    return RETRY if seconds is None else dataclasses.replace(RETRY, deadline=seconds)


class _ShortRead(Exception):
    """A read returned fewer bytes than asked."""


def _cause(e: BaseException) -> Cause:
    return Cause(str(e)) if isinstance(e, _ShortRead) else cause_of(e)


def _retrying(
    name: str,
    what: str,
    policy: Retry,
    attempt: Callable[[float | None], _T],
    on_retry: Callable[[], None] | None = None,
) -> _T:
    """`attempt(timeout)`, retried as `policy` says, each attempt given the time left to the
    deadline; its failure as a `StorageError` naming `name`, `what` and the cause (see
    `causes.cause_of`): at once for a permanent cause (no credentials, access denied, a missing
    file), else once the attempts or the time are spent. An attempt the deadline cuts short
    says nothing of why: the message names the last cause an attempt did tell (a refused
    connection stays a refused connection), "timed out" only where none did."""
    start = time.monotonic()
    deadline = start + policy.deadline
    backoff = policy.backoff
    tries = 0
    known: Cause | None = None
    while True:
        tries += 1
        try:
            return attempt(None if math.isinf(deadline) else max(0.001, deadline - time.monotonic()))
        except Exception as e:
            cause = _cause(e)
            if cause.permanent:
                raise StorageError(f"{name}: {what}: {cause}") from e
            known = cause if cause.telling or known is None else known
            wait = random.uniform(backoff / 2, backoff)
            now = time.monotonic()
            if tries >= policy.attempts or now + wait >= deadline:
                raise StorageError(f"{name}: {what}: {known}{_gave_up(tries, now - start, policy, e)}") from e
            log.debug("%s: %s: %s; retrying in %.2f s", name, what, cause, wait)
        if on_retry is not None:
            on_retry()
        time.sleep(wait)
        backoff = min(backoff * 2, policy.max_backoff)


def _gave_up(tries: int, seconds: float, policy: Retry, last: Exception) -> str:
    """How many attempts a call made in how long, and whether the deadline ended them."""
    tried = f"{tries} attempt{'s' * (tries > 1)} in {seconds:.1f} s"
    if tries < policy.attempts or isinstance(last, TimeoutError):
        return f" (gave up after {tried}: the {policy.deadline:g} s deadline reached)"
    return f" (gave up after {tried})" if tries > 1 else ""


def _call(fs: Any, method: str, timeout: float | None, *args: Any, **kwargs: Any) -> Any:
    """``fs.method(*args, **kwargs)``, given up after `timeout` seconds (a `TimeoutError`)."""
    import fsspec.asyn
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    if isinstance(fs, LocalFileSystem) and method in _READS:
        _refuse_special_files(fs, args[0] if method == "cat_ranges" else [args[0]])
    if timeout is None or isinstance(fs, (LocalFileSystem, MemoryFileSystem)):
        return getattr(fs, method)(*args, **kwargs)
    if isinstance(fs, fsspec.asyn.AsyncFileSystem) and not fs.asynchronous:
        # fsspec's sync() cancels the coroutine at the timeout: nothing is left running
        return fsspec.asyn.sync(fs.loop, getattr(fs, "_" + method), *args, timeout=timeout, **kwargs)
    return _in_thread(functools.partial(getattr(fs, method), *args, **kwargs), timeout)


_READS = ("cat_file", "cat_ranges", "cat", "open", "read_bytes")


def _refuse_special_files(fs: Any, paths: Sequence[str]) -> None:
    """A local store's tag, record or blob is a regular file: a FIFO would make the read wait
    for a writer without end (a local call has no deadline), a device never ends."""
    for path in paths:
        try:
            st = os.stat(fs._strip_protocol(path))
        except OSError:
            continue  # missing: the read says so
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise ValueError(f"{path}: not a regular file (a FIFO, socket or device never ends as a file does)")


def _in_thread(fn: Callable[[], _T], timeout: float | None) -> _T:
    """`fn()` on a thread of its own, waited for at most `timeout` seconds. A call still running
    then is left to end there (the filesystem's own timeouts end it; a daemon thread never holds
    the process up)."""
    if timeout is None:
        return fn()
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as e:
            outcome.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="atpack-storage-call", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def call(fs: Any, url: str, what: str, method: str, *args: Any, retry: Retry | None = None, **kwargs: Any) -> Any:
    """``fs.method(*args, **kwargs)`` within the deadline, retried on transient errors, as `retry`
    (default: `default_retry()`) says; a failure is a `StorageError` naming `url` and `what`
    (caused by the filesystem's error: a `FileNotFoundError` for a missing file)."""
    policy = default_retry() if retry is None else retry
    return _retrying(url, what, policy, lambda timeout: _call(fs, method, timeout, *args, **kwargs))


def fetch(
    fs: Any,
    url: str,
    what: str,
    paths: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    *,
    expected: Sequence[int] | None = None,
    retry: Retry | None = None,
    on_retry: Callable[[], None] | None = None,
) -> list[bytes | FileNotFoundError]:
    """The byte ranges ``paths[i][starts[i]:ends[i]]``, fetched together (concurrently where the
    filesystem can) within the deadline. A range whose file is missing is its
    `FileNotFoundError`, in its place. A range that fails otherwise, or that comes back shorter
    than ``expected[i]``, is fetched again (only the ranges that failed), as `retry` says; what
    a retry cannot mend (no credentials, access denied) ends the whole fetch at once."""
    policy = default_retry() if retry is None else retry
    out: list[bytes | FileNotFoundError | None] = [None] * len(paths)

    def attempt(timeout: float | None) -> list[bytes | FileNotFoundError]:
        todo = [i for i, b in enumerate(out) if b is None]  # what the last attempts did not get
        got = _call(
            fs,
            "cat_ranges",
            timeout,
            [paths[i] for i in todo],
            [starts[i] for i in todo],
            [ends[i] for i in todo],
            on_error="return",
        )
        errors: list[BaseException] = []
        short: list[str] = []
        for i, data in zip(todo, got):
            if isinstance(data, FileNotFoundError):
                out[i] = data
            elif isinstance(data, BaseException):
                errors.append(data)
            elif expected is not None and len(data) < expected[i]:
                short.append(f"{paths[i]} at {starts[i]}: got {len(data)} of {expected[i]} bytes")
            else:
                out[i] = bytes(data)
        if errors:  # named by its cause (mostly the same for every range): one that no retry mends first
            raise next((e for e in errors if _cause(e).permanent), errors[0])
        if short:
            raise _ShortRead(f"{len(short)} of {len(todo)} ranges came back short, first {short[0]}")
        return [b for b in out if b is not None]

    if not paths:
        return []
    return _retrying(url, what, policy, attempt, on_retry)


def present(fs: Any, url: str, what: str, paths: Sequence[str], *, retry: Retry | None = None) -> list[bool]:
    """Whether each file of `paths` exists, at a cost that depends on how many paths there are,
    not on what else is there: on an async filesystem (s3fs, gcsfs, http), one request per path
    (its first byte), all concurrently; elsewhere, one lookup each."""
    import fsspec.asyn

    if isinstance(fs, fsspec.asyn.AsyncFileSystem) and not fs.asynchronous:
        got = fetch(fs, url, what, paths, [0] * len(paths), [1] * len(paths), retry=retry)
        return [not isinstance(result, FileNotFoundError) for result in got]
    return [bool(call(fs, url, f"{what}: {path}", "exists", path, retry=retry)) for path in paths]


def is_folder(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, retry: Retry | None = None
) -> bool:
    """Whether `url` is a folder (a missing one is not), within the deadline."""
    if (local := local_path(url, storage_options)) is not None:
        return os.path.isdir(local)
    fs, path = resolve(url, storage_options)
    return bool(call(fs, os.fspath(url), "checking whether it is a folder", "isdir", path, retry=retry))


def glob(
    pattern: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, retry: Retry | None = None
) -> list[str]:
    """The names (last parts) of the files matching `pattern`, a URL with wildcards in its last
    part, within the deadline."""
    if (local := local_path(pattern, storage_options)) is not None:
        return sorted(
            os.path.basename(p)
            for p in _glob.glob(_glob.escape(os.path.dirname(local)) + "/" + os.path.basename(local))
        )
    fs, path = resolve(pattern, storage_options)
    found = call(fs, os.fspath(pattern), "listing", "glob", path, retry=retry)
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in found)


class _FsspecSource:
    """A file on any fsspec filesystem; every read is one ranged request, retried as `retry` says."""

    def __init__(self, fs: Any, path: str, url: str, retry: Retry) -> None:
        self.name = url
        self._fs = fs
        self._path = path
        self._retry = retry
        self.retries = 0
        """How many times a read was tried again."""
        try:
            self.size = int(self._retrying("reading its size", lambda timeout: _call(fs, "size", timeout, path)))
        except StorageError as e:
            if isinstance(e.__cause__, FileNotFoundError):
                raise NotFoundError(f"no pack at {url}: no such file") from e.__cause__
            raise

    def read(self, offset: int, length: int) -> bytes:
        expected = max(0, min(length, self.size - offset))

        def attempt(timeout: float | None) -> bytes:
            data = bytes(_call(self._fs, "cat_file", timeout, self._path, start=offset, end=offset + length))
            if len(data) < expected:
                raise _ShortRead(f"got {len(data)} of {expected} bytes")
            return data

        return self._retrying(f"reading {length} bytes at {offset}", attempt)

    def read_many(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        if len(ranges) <= 1:
            return [self.read(o, n) for o, n in ranges]
        got = fetch(
            self._fs,
            self.name,
            f"reading {len(ranges)} ranges",
            [self._path] * len(ranges),
            [o for o, _ in ranges],
            [o + n for o, n in ranges],
            expected=[max(0, min(n, self.size - o)) for o, n in ranges],
            retry=self._retry,
            on_retry=self._count_retry,
        )
        for data in got:
            if isinstance(data, FileNotFoundError):
                raise NotFoundError(f"{self.name}: no longer there (deleted while it was read)") from data
        return got  # type: ignore[return-value]

    def close(self) -> None:
        pass

    def _count_retry(self) -> None:
        self.retries += 1

    def _retrying(self, what: str, attempt: Callable[[float | None], _T]) -> _T:
        return _retrying(self.name, what, self._retry, attempt, self._count_retry)


def open_source(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, retry: Retry | None = None
) -> RangeSource:
    """Open `url` for ranged reads; reads from remote stores are retried, and bounded in time,
    as `retry` (default: `default_retry()`) says."""
    if (local := local_path(url, storage_options)) is not None:
        return _LocalSource(local)
    from fsspec.implementations.local import LocalFileSystem

    fs, path = resolve(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        return _LocalSource(path)
    return _FsspecSource(fs, path, os.fspath(url), default_retry() if retry is None else retry)


@contextlib.contextmanager
def publish(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, retry: Retry | None = None
) -> Iterator[Sink]:
    """Write a file that readers see whole or not at all.

    Local files are written beside the target and renamed over it; other filesystems write
    without autocommit and commit at the end (an object store's upload completes atomically).
    If the block raises, nothing is published. On remote filesystems each step (opening the
    upload, each chunk of at least `_CHUNK` bytes, closing, committing) ends within the
    deadline of `retry` (default: `default_retry()`); the filesystem retries its own requests.
    """
    name = os.fspath(url)
    if (local := local_path(url, storage_options)) is not None:
        with _publish_local(local) as f:
            yield _GuardedSink(f, name)
        return
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    fs, path = resolve(url, storage_options)
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
    policy = default_retry() if retry is None else retry
    once = dataclasses.replace(policy, attempts=1)  # a step of an upload cannot be done again

    def step(what: str, fn: Callable[[], _T]) -> _T:
        return _retrying(name, what, once, lambda timeout: _in_thread(fn, timeout))

    upload = step("cannot write: starting the upload", lambda: fs.open(path, "wb", autocommit=False))
    sink = _GuardedSink(upload, name, step)
    try:
        try:
            yield sink
            sink.flush()
        except BaseException as e:
            _discard(upload, step, wait=not _timed_out(e))
            raise
        try:
            step("cannot write: completing the upload", upload.close)
            if not getattr(upload, "autocommit", False):  # simplecache's file uploads on close, whatever it was asked
                step("cannot write: committing the upload", upload.commit)
        except StorageError as e:
            _discard(upload, step, wait=not _timed_out(e))
            if _timed_out(e) or not _landed(fs, path, sink, policy):
                raise
            log.warning("%s: the upload completed although its last response was lost (%s)", url, e)
    finally:
        # fs.open(autocommit=False) queues the file in fs.transaction.files, which no transaction drains
        with contextlib.suppress(Exception):
            fs.transaction.files.remove(upload)
    log.debug("published %s", url)


def _timed_out(e: BaseException) -> bool:
    return isinstance(e, StorageError) and isinstance(e.__cause__, TimeoutError)


class Sink(Protocol):
    """Where a pack is written: a sequential byte stream."""

    def write(self, data: bytes | memoryview, /) -> int: ...


_Step = Callable[[str, Callable[[], Any]], Any]
"""Runs one step of an upload within the deadline: ``step(what, fn)``."""


class _GuardedSink:
    """A stream whose failures (a full disk, a dropped connection) are `StorageError`s, which
    remembers how many bytes went through it and the last of them. Given a `step`, writes go to
    the file in chunks of at least `CHUNK` bytes, each a step (within the deadline): a remote
    file uploads a part now and then as it is written."""

    TAIL = 64 << 10
    CHUNK = 4 << 20

    def __init__(self, f: IO[bytes], url: str, step: _Step | None = None) -> None:
        self._f = f
        self._url = url
        self._step = step
        self._pending = bytearray()
        self.size = 0
        self._tail = bytearray()

    def write(self, data: bytes | memoryview, /) -> int:
        if self._step is None:
            self._write(data)
        else:
            self._pending += data
            if len(self._pending) >= self.CHUNK:
                self.flush()
        self.size += len(data)
        self._tail += data[-self.TAIL :]
        if len(self._tail) > 2 * self.TAIL:  # trimmed now and then: amortized, whatever the write sizes
            del self._tail[: -self.TAIL]
        return len(data)

    def flush(self) -> None:
        """Hand what is held to the file (a step)."""
        if self._step is not None and self._pending:
            chunk, self._pending = bytes(self._pending), bytearray()
            self._step(f"cannot write: writing {len(chunk):,} bytes", lambda: self._write(chunk))

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self._f.write(data)
        except Exception as e:
            raise StorageError(f"{self._url}: cannot write: {type(e).__name__}: {e}") from e

    @property
    def tail(self) -> bytes:
        """The last bytes written (up to `TAIL`)."""
        return bytes(self._tail[-self.TAIL :])


def _landed(fs: Any, path: str, sink: _GuardedSink, policy: Retry) -> bool:
    """Whether an upload whose completion seemed to fail completed all the same (the store
    handled the request, its response was lost): the object at `path` is as long as what was
    written and ends with the same bytes (a pack's last bytes hold the digest of its index)."""
    try:
        fs.invalidate_cache(path)
        if call(fs, path, "checking the upload", "size", path, retry=policy) != sink.size:
            return False
        start = sink.size - len(sink.tail)
        tail = call(fs, path, "checking the upload", "cat_file", path, start=start, end=sink.size, retry=policy)
        return bool(tail == sink.tail)
    except Exception:
        return False


def _discard(f: Any, step: _Step, *, wait: bool) -> None:
    """Abandon an upload (abort it on the store). After a timeout (the store does not answer)
    the abort is sent but not waited for."""

    # never close a discarded file: fsspec's close() (__del__ runs it too) would flush it, starting a new upload
    with contextlib.suppress(Exception):
        f.closed = True

    def abandon() -> None:
        with contextlib.suppress(Exception):
            f.discard()

    if wait:
        with contextlib.suppress(StorageError):
            step("abandoning the upload", abandon)
    else:
        threading.Thread(target=abandon, name="atpack-storage-discard", daemon=True).start()


@contextlib.contextmanager
def _publish_local(path: str) -> Iterator[IO[bytes]]:
    try:
        with atomic.replacing(path) as f:
            yield f
    except OSError as e:
        raise StorageError(f"{path}: cannot write: {e.strerror or e}") from e
    log.debug("published %s", path)
