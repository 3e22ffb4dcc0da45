"""What a process looked up in torch's and Triton's caches: each lookup, hit or miss, with the
components of the key it looked up, and what the misses cost (compiling, benchmarking).

A process records where asked: ``ATPACK_EXPLAIN=1``, or the marker ``atpack-explain.json`` that
``atpack populate --explain`` writes into the Inductor folder (`atpack.replay.explaining`; the
plug-in turns it on in every process that uses the folder, `atpack.autoload`). Each process
appends its events, as they happen, to a file of its own in ``<Inductor folder>/atpack-lookups/``
(one JSON document a line): Inductor compiles in forked workers that never run exit handlers,
and a process that crashes keeps what it recorded. ``atpack explain`` reads them beside a pack.
A capture records the same way in memory and keeps each key's components in its pack
(``lookup.key/1`` artifacts): the entries a later miss is compared with.

The hooks are in `atpack.seam` (`seam.watch_lookups`); this module holds what they report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Iterable, Sequence
from typing import IO, Annotated, Literal, Union

import msgspec
from msgspec import Meta, Struct

from .artifacts import KeyComponent as Component
from .artifacts import LookupCache as Cache
from .errors import FormatError, LimitError

__all__ = [
    "CACHES",
    "RECORDS",
    "Benchmarked",
    "Cache",
    "Component",
    "Lookup",
    "Record",
    "Recorder",
    "Saved",
    "Spent",
    "read_records",
    "record_files",
]

log = logging.getLogger(__name__)

CACHES: tuple[str, ...] = ("aot_autograd", "fx_graph", "autotune", "gemm", "triton_autotune", "triton_kernel")
"""Every cache a lookup is recorded for, outermost first: AOT autograd's entries hold FX graphs,
whose kernels are tuned (`autotune`: Inductor's ``.best_config``; `gemm`: its max-autotune GEMM
timings) and compiled by Triton."""

RECORDS = "atpack-lookups"
"""The folder, in the Inductor folder, that processes write their records into."""
MAX_RECORD_BYTES = 64 << 20
"""A record file larger than this is refused (tests/programs/explain_step.py missing its three
graphs writes 228 KB: components are written for misses only)."""
FORMAT: Literal["atpack.lookups/1"] = "atpack.lookups/1"


class Started(Struct, frozen=True, tag="started", forbid_unknown_fields=True):
    """A record's first line: the process and when it started recording."""

    format: Literal["atpack.lookups/1"]
    pid: int
    time: float


class Lookup(Struct, frozen=True, tag="lookup", kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One lookup of one cache: the key, whether it hit, the key's components where known, and
    what a miss cost where it is known at once (Triton's compile time)."""

    cache: Cache
    key: Annotated[str, Meta(max_length=512)]
    hit: bool
    name: Annotated[str, Meta(max_length=512)] = ""
    components: Annotated[tuple[Component, ...], Meta(max_length=8192)] = ()
    seconds: float = 0.0


class Saved(Struct, frozen=True, tag="saved", forbid_unknown_fields=True):
    """The entry a miss looked for was made and saved, `seconds` after the miss (compiling it;
    an AOT autograd entry's includes its graphs')."""

    cache: Cache
    key: Annotated[str, Meta(max_length=512)]
    seconds: float


class Benchmarked(Struct, frozen=True, tag="benchmarked", forbid_unknown_fields=True):
    """One benchmark call (Inductor's benchmarker or Triton's autotuner: one candidate timed)."""

    seconds: float


class Spent(Struct, frozen=True, tag="spent", forbid_unknown_fields=True):
    """Time the recording itself took (listing a key's components, writing the record): what
    explaining costs the process."""

    seconds: float


Event = Union[Started, Lookup, Saved, Benchmarked, Spent]


class Record(Struct, frozen=True, kw_only=True):
    """One process's record, read back: its lookups in order (each miss with the seconds its
    save came after) and its benchmark calls."""

    pid: int
    started: float
    lookups: tuple[Lookup, ...]
    benchmarks: int = 0
    benchmark_s: float = 0.0
    spent_s: float = 0.0


def cut(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Recorder:
    """Takes what the seam reports in one process: kept in memory (a capture) and, with `folder`,
    appended to this process's record file there (a forked child opens a file of its own)."""

    def __init__(self, folder: str | None = None, *, keep: bool = True) -> None:
        self.folder = folder
        self.keep = keep
        self.lookups: list[Lookup] = []
        self._missed: dict[tuple[str, str], float] = {}
        self._unspent = 0.0
        self._file: IO[bytes] | None = None
        self._pid = -1
        self._encoder = msgspec.json.Encoder()

    def looked_up(
        self,
        cache: str,
        key: str,
        hit: bool,
        *,
        name: str = "",
        components: Iterable[tuple[str, str, str]] = (),
        seconds: float = 0.0,
    ) -> None:
        parts = _bounded([Component(cut(n, 512), cut(h, 128), cut(s)) for n, h, s in components])
        lookup = Lookup(cache=cache, key=cut(key, 512), hit=hit, name=cut(name, 512), components=parts, seconds=seconds)  # type: ignore[arg-type]
        if not hit and cache in _SAVED_LATER:
            if len(self._missed) >= 10_000:  # saves that never came (a graph torch would not cache)
                self._missed.pop(next(iter(self._missed)))
            self._missed[(cache, key)] = time.perf_counter()
        if self.keep:
            self.lookups.append(lookup)
        # a hit needs no explaining: its components are kept in memory (a capture's keys), not written
        self._emit(msgspec.structs.replace(lookup, components=()) if hit else lookup)

    def saved(self, cache: str, key: str) -> None:
        since = self._missed.pop((cache, key), None)
        if since is not None:
            self._emit(Saved(cache, cut(key, 512), time.perf_counter() - since))  # type: ignore[arg-type]

    def benchmarked(self, seconds: float) -> None:
        self._emit(Benchmarked(seconds))

    def spent(self, seconds: float) -> None:
        self._unspent += seconds
        if self._unspent >= 1e-3:  # a line a millisecond at most: less is left out (under 1 ms a process)
            self._emit(Spent(self._unspent))
            self._unspent = 0.0

    def _emit(self, event: Event) -> None:
        if self.folder is None:
            return
        if self._pid != os.getpid():  # the first event, or the first in a forked child
            self._open()
        assert self._file is not None
        self._file.write(self._encoder.encode(event) + b"\n")

    def _open(self) -> None:
        self._pid = os.getpid()
        self._file = None  # a parent's file, inherited: not this process's to write or close
        assert self.folder is not None
        folder = os.path.join(self.folder, RECORDS)
        os.makedirs(self.folder, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        # the folder itself, not a link planted in its place, and the user's alone
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            st = os.fstat(dir_fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise PermissionError(f"{folder} is not this user's alone: no record written there")
            now = time.time()
            name = f"{int(now * 1000)}-{self._pid}.jsonl"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._file.write(self._encoder.encode(Started(FORMAT, self._pid, now)) + b"\n")


_SAVED_LATER = ("fx_graph", "aot_autograd")
"""The caches whose misses are followed by a save in the same process (`Recorder.saved`)."""
MAX_COMPONENTS = 8192


def _bounded(parts: list[Component]) -> tuple[Component, ...]:
    """At most `MAX_COMPONENTS`: the rest folded into one, whose hash covers theirs (a graph with
    thousands of inputs lists one component each)."""
    if len(parts) <= MAX_COMPONENTS:
        return tuple(parts)
    import hashlib

    rest = parts[MAX_COMPONENTS - 1 :]
    digest = hashlib.sha256("\n".join(f"{c.name}={c.hash}" for c in rest).encode()).hexdigest()[:32]
    return (*parts[: MAX_COMPONENTS - 1], Component(f"... {len(rest)} more", digest, f"{len(rest)} more components"))


def record_files(inductor_dir: str) -> list[str]:
    """The records in `inductor_dir`'s records folder, oldest first."""
    folder = os.path.join(inductor_dir, RECORDS)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        names = [n for n in os.listdir(folder) if n.endswith(".jsonl") and not n.startswith(".")]
        return [os.path.join(folder, n) for n in sorted(names, key=lambda n: (len(n), n))]
    return []


_decoder = msgspec.json.Decoder(Event)


def read_records(paths: Sequence[str]) -> list[Record]:
    """Each record file, whoever wrote it: a regular file of at most `MAX_RECORD_BYTES`, opened
    without following a link or waiting on a special file, each line decoded into its type. A
    last line cut short (a process killed mid-write) is left out."""
    return [_read_record(path) for path in paths]


def _read_record(path: str) -> Record:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise FormatError(f"{path}: cannot open the record ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{path}: not a regular file")
        if st.st_size > MAX_RECORD_BYTES:
            raise LimitError(f"{path}: {st.st_size} bytes, more than a record may hold ({MAX_RECORD_BYTES})")
        lines = f.read(MAX_RECORD_BYTES + 1).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # cut short
    events = []
    for n, line in enumerate(lines, 1):
        try:
            events.append(_decoder.decode(line))
        except msgspec.DecodeError as e:
            raise FormatError(f"{path}, line {n}: not a lookup record ({e})") from None
    if not events or not isinstance(events[0], Started):
        raise FormatError(f"{path}: not a lookup record (its first line names no {FORMAT} process)")
    return _assembled(events[0], events[1:])


def _assembled(started: Started, events: list[Event]) -> Record:
    lookups: list[Lookup] = []
    pending: dict[tuple[str, str], int] = {}
    benchmarks, benchmark_s, spent_s = 0, 0.0, 0.0
    for event in events:
        if isinstance(event, Lookup):
            if not event.hit:
                pending[(event.cache, event.key)] = len(lookups)
            lookups.append(event)
        elif isinstance(event, Saved):
            if (i := pending.pop((event.cache, event.key), None)) is not None:
                lookups[i] = msgspec.structs.replace(lookups[i], seconds=event.seconds)
        elif isinstance(event, Benchmarked):
            benchmarks += 1
            benchmark_s += event.seconds
        elif isinstance(event, Spent):
            spent_s += event.seconds
    return Record(
        pid=started.pid,
        started=started.time,
        lookups=tuple(lookups),
        benchmarks=benchmarks,
        benchmark_s=benchmark_s,
        spent_s=spent_s,
    )
