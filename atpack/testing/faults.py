"""Faults to test against: storage that fails now and then, and processes killed mid-write.

Storage: a pack on an S3 server (`atpack.testing.s3`), read or written through a
`FaultInjectingProxy`, with what happened counted (requests, faults injected, atpack's own
retries, time, outcome), and the content of a large store, made cheaply (`store_objects`).

    from atpack.testing.s3 import S3Server, dummy_aws_environment

    with dummy_aws_environment(), S3Server() as server, server.fault_proxy(rate=0.3) as proxy:
        bucket = server.new_bucket()
        blobs = sample_blobs(16, 1500)
        write_pack(bucket.url("flaky.atpack"), bucket.storage_options, blobs)
        print(read_through(proxy, bucket.url("flaky.atpack"), proxy.storage_options(bucket), blobs))

Processes (POSIX: they fork and SIGKILL): work killed at its n-th file-changing call
(`kill_at`, with `count_calls` and `even_points` to choose the calls; `Tripwire` does the
counting) or after a delay (`kill_after`); listings of folders (every file's bytes, every folder,
every symlink) and the checks run on cache folders after a crash (`inspect_crash`: every visible
file whole, temporary files hidden); and processes released together by a barrier (`race`).
The kill functions fork, so run them in a fresh interpreter, not inside pytest.

Plain functions, no fixtures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

import atpack
from atpack import storage
from atpack.artifacts import KernelFile
from atpack.digest import digest_bytes
from atpack.store import PackRecord, _frame, _record_digest

from .s3 import FaultInjectingProxy

__all__ = [
    "ENV",
    "MiB",
    "TEMP_PREFIX",
    "WRITE_OPTIONS",
    "Damage",
    "Entry",
    "Kill",
    "Outcome",
    "RetryCounter",
    "Tripwire",
    "count_calls",
    "counting_retries",
    "even_points",
    "fill",
    "inspect_crash",
    "is_temporary",
    "kill_after",
    "kill_at",
    "listing",
    "pack_bytes",
    "race",
    "read_through",
    "restore",
    "run_forked",
    "sample_blobs",
    "store_objects",
    "upload_through",
    "visible",
    "write_pack",
]

# --------------------------------------------------------------------------- flaky storage

MiB = 1 << 20
"""Bytes in a mebibyte."""
ENV = atpack.Environment(triton_version="3.4.0", device_name="NVIDIA H100 80GB HBM3")
"""The environment of the kernels `fill` adds."""


def sample_blobs(count: int, size: int, seed: int = 0) -> dict[str, bytes]:
    """`count` incompressible blobs of about `size` bytes, by digest."""
    rng = random.Random(seed)
    blobs = [rng.randbytes(size + 97 * i) for i in range(count)]
    return {digest_bytes(b): b for b in blobs}


def fill(writer: atpack.PackWriter, blobs: dict[str, bytes], name: str = "kernel") -> None:
    """One compiled kernel per blob, ``<name>_<i>``, the blob as its only file (never populated:
    these packs test reading)."""
    env = writer.add_environment(ENV)
    for i, (digest, data) in enumerate(blobs.items()):
        writer.add_blob(data)
        kernel = f"{name}_{i}"
        files = (KernelFile(f"{kernel}.json", digest, len(data)),)
        writer.add(atpack.TritonKernel(env=env, cache_key=f"{name[:1] * 48}{i:04d}", name=kernel, files=files))


WRITE_OPTIONS: dict[str, Any] = {"group_size": 1024, "level": 1}
"""Blobs over 1 KiB get a frame each: one ranged request per blob."""


def write_pack(url: str, storage_options: dict[str, Any], blobs: dict[str, bytes], name: str = "kernel") -> None:
    """Write a pack of `blobs` (`fill`) to `url` with `WRITE_OPTIONS`."""
    with atpack.create(url, storage_options=storage_options, **WRITE_OPTIONS) as writer:
        fill(writer, blobs, name)


def pack_bytes(blobs: dict[str, bytes], name: str = "kernel") -> bytes:
    """The bytes `write_pack` writes for `blobs` (the writer is deterministic). Not
    `atpack.testing.packs.pack_bytes`, which writes a `Content`."""
    out = io.BytesIO()
    writer = atpack.PackWriter(out, **WRITE_OPTIONS)
    fill(writer, blobs, name)
    writer.finish()
    return out.getvalue()


class RetryCounter(logging.Handler):
    """Counts the log records of atpack's store that say it is retrying (`count`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count += 1


@contextlib.contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    """Counts the retries atpack's store makes (it logs each at DEBUG)."""
    logger = logging.getLogger("atpack.storage")
    counter = RetryCounter()
    level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)


@dataclasses.dataclass
class Outcome:
    """What one scenario did."""

    rate: float
    kinds: tuple[str, ...]
    requests: int = 0
    faults: int = 0
    by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    atpack_retries: int = 0
    reads: int = 0
    """Blobs read back whole and right."""
    outcome: str = ""
    """"ok", or the error's type; for uploads, what is at the target afterwards too."""
    error: str | None = None
    seconds: float = 0.0

    def record(self, proxy: FaultInjectingProxy, retries: int, start: float) -> None:
        stats = proxy.stats()
        self.requests, self.faults, self.by_kind = stats["requests"], stats["faults"], stats["by_kind"]
        self.atpack_retries = retries
        self.seconds = round(time.monotonic() - start, 2)


def read_through(
    proxy: FaultInjectingProxy,
    url: str,
    storage_options: dict[str, Any],
    blobs: dict[str, bytes],
    *,
    policy: storage.Retry | None = None,
) -> Outcome:
    """Open the pack at `url` and read every blob one by one, then all in one batch, with the
    proxy's faults as configured; every blob read must be right (else AssertionError)."""
    outcome = Outcome(proxy.rate, proxy.kinds)
    proxy.reset()
    start = time.monotonic()
    with counting_retries() as retries:
        try:
            with atpack.open(url, storage_options=storage_options, retry=policy) as pack:
                for digest, data in blobs.items():
                    if pack.read_blob(digest) != data:
                        raise AssertionError(f"{url}: blob {digest} read back wrong")
                    outcome.reads += 1
                for digest, data in pack.read_blobs(list(blobs)):
                    if data != blobs[digest]:
                        raise AssertionError(f"{url}: blob {digest} read back wrong in a batch")
                    outcome.reads += 1
            outcome.outcome = "ok"
        except atpack.AtpackError as e:
            outcome.outcome = type(e).__name__
            outcome.error = str(e)
        outcome.record(proxy, retries.count, start)
    return outcome


def upload_through(
    proxy: FaultInjectingProxy,
    url: str,
    storage_options: dict[str, Any],
    blobs: dict[str, bytes],
    *,
    check: Any,
    old: bytes | None,
) -> Outcome:
    """Write a pack of `blobs` to `url` through the proxy, then look at the target with `check`
    (a filesystem that bypasses the proxy). `outcome` is "published" or the error's type, then
    what the target holds: "new pack", "old pack", "nothing", or "CORRUPT" (anything else)."""
    outcome = Outcome(proxy.rate, proxy.kinds)
    proxy.reset()
    start = time.monotonic()
    with counting_retries() as retries:
        try:
            write_pack(url, storage_options, blobs, name="new")
            result = "published"
        except atpack.AtpackError as e:
            result = type(e).__name__
            outcome.error = str(e)
        outcome.record(proxy, retries.count, start)
    path = url.removeprefix("s3://")
    held = check.cat_file(path) if check.exists(path) else None
    if held is None:
        state = "nothing"
    elif held == pack_bytes(blobs, name="new"):
        state = "new pack"
    elif held == old:
        state = "old pack"
    else:
        state = "CORRUPT"
    outcome.outcome = f"{result}, target: {state}"
    return outcome


def store_objects(packs: int, *, blobs_per_pack: int = 5, tag_every: int = 10, seed: int = 0) -> dict[str, bytes]:
    """What a store holding `packs` small packs holds, by path under its root: each pack has
    `blobs_per_pack` blobs of its own (64 bytes each) and a record as a push writes it (named
    by its digest), and every `tag_every`-th pack a tag. As many objects under ``blobs/`` as
    a real store of that many packs, made in a second or so for 10,000 packs."""
    rng = random.Random(seed)
    objects: dict[str, bytes] = {}
    for i in range(packs):
        blobs = []
        for _ in range(blobs_per_pack):
            data = rng.randbytes(64)
            digest = digest_bytes(data)
            objects[f"blobs/{digest[7:9]}/{digest[7:]}"] = _frame(data, 3)
            blobs.append((digest, len(data)))
        key = "org.example.filler"
        record = PackRecord(annotations={key: str(i)}, digested_annotations=(key,), blobs=tuple(sorted(blobs)))
        digest = _record_digest(record)
        objects[f"packs/{digest[7:]}.json.zst"] = _frame(msgspec.json.encode(record), 3)
        if i % tag_every == 0:
            objects[f"tags/filler-{i}"] = f"{digest}\n".encode()
    return objects


# --------------------------------------------------------------------------- listings

TEMP_PREFIX = ".atpack-"
"""How populate names its temporary files: hidden, beside their target (as `atpack.files` does)."""

Entry = tuple[str, Any]
"""("dir", None), ("file", bytes), ("link", target) or ("other", mode)."""


def listing(root: str | Path) -> dict[str, Entry]:
    """Everything under `root` (not following symlinks), by path relative to `root`."""
    root = str(root)
    out: dict[str, Entry] = {}
    if not os.path.lexists(root):
        return out
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read())
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def restore(root: str | Path, state: dict[str, Entry]) -> None:
    """Make `root` hold exactly `state` (a `listing`)."""
    root = str(root)
    if os.path.lexists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    for rel, (kind, value) in sorted(state.items()):
        path = os.path.join(root, rel)
        if kind == "dir":
            os.makedirs(path, exist_ok=True)
        elif kind == "file":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(value)
        elif kind == "link":
            os.symlink(value, path)
        else:
            raise ValueError(f"cannot restore {rel}: {kind}")


def is_temporary(rel: str) -> bool:
    return os.path.basename(rel).startswith(TEMP_PREFIX)


def visible(state: dict[str, Entry]) -> dict[str, Entry]:
    """What torch and triton can see: everything but populate's hidden temporary files."""
    return {rel: entry for rel, entry in state.items() if not is_temporary(rel)}


@dataclasses.dataclass
class Damage:
    """What a look at cache folders after a crash found wrong (every count must be 0)."""

    partial: list[str] = dataclasses.field(default_factory=list)  # a file neither as before nor as expected
    foreign: list[str] = dataclasses.field(default_factory=list)  # a visible name populate never writes
    orphan_groups: list[str] = dataclasses.field(default_factory=list)  # a __grp__ file naming missing children
    odd_temporaries: list[str] = dataclasses.field(default_factory=list)  # a temporary that is not a plain file

    def count(self) -> int:
        return len(self.partial) + len(self.foreign) + len(self.orphan_groups) + len(self.odd_temporaries)


def inspect_crash(state: dict[str, Entry], before: dict[str, Entry], after: dict[str, Entry], root: str) -> Damage:
    """Check cache folders (`state`, a listing of `root`) left by a killed populate that started
    from `before` and, left alone, ends at `after`: each visible file is byte-identical to one of
    the two, temporary files are hidden plain files, and a Triton group file (which makes a kernel
    visible) only exists once every file it names is in place."""
    damage = Damage()
    for rel, entry in state.items():
        if is_temporary(rel):
            if entry[0] != "file":
                damage.odd_temporaries.append(rel)
            continue
        if rel not in before and rel not in after:
            damage.foreign.append(rel)
        elif entry != before.get(rel) and entry != after.get(rel):
            damage.partial.append(rel)
    for rel, (kind, value) in state.items():
        if kind == "file" and os.path.basename(rel).startswith("__grp__") and rel not in damage.partial:
            children = json.loads(value)["child_paths"].values()
            for child in children:
                child_rel = os.path.relpath(child, root)
                if state.get(child_rel) != after.get(child_rel):
                    damage.orphan_groups.append(rel)
                    break
    return damage


# --------------------------------------------------------------------------- killing


class Tripwire:
    """Counts the calls that change files (open, mkdir, write, rename, fsync, and a pack
    writer's writes) and, once armed, SIGKILLs this process at call number `at`: before it, or
    for a write, after writing half of its bytes. A context manager: it patches `os` and
    atpack's pack sink while it is entered (in this process only: use it in a forked child, as
    `kill_at` does), and `calls` counts what it saw."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.calls = 0
        self._lock = threading.Lock()
        self._saved: list[tuple[Any, str, Any]] = []

    def _hit(self) -> bool:
        with self._lock:
            self.calls += 1
            return self.calls == self.at

    @staticmethod
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    def __enter__(self) -> Tripwire:
        real_write = os.write

        def write(fd: int, data: Any) -> int:
            if self._hit():
                real_write(fd, memoryview(data)[: len(data) // 2])
                self.die()
            return real_write(fd, data)

        def sink_write(sink: Any, data: Any) -> int:
            if self._hit():
                sink._f.write(memoryview(data)[: len(data) // 2])
                sink._f.flush()
                self.die()
            return real_sink_write(sink, data)

        def before(fn: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                if self._hit():
                    self.die()
                return fn(*args, **kwargs)

            return call

        real_open = os.open

        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            # only an open that can change a file is a kill point: opening to read changes nothing
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC) and self._hit():
                self.die()
            return real_open(path, flags, *args, **kwargs)

        real_sink_write = storage._GuardedSink.write
        self._patch(os, "write", write)
        self._patch(os, "open", open_)
        self._patch(storage._GuardedSink, "write", sink_write)
        for name in ("mkdir", "replace", "rename", "link", "unlink", "fsync"):
            self._patch(os, name, before(getattr(os, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)


def count_calls(work: Callable[[], object]) -> int:
    """How many file-changing calls `work` makes (the kill points `kill_at` can choose)."""
    with Tripwire(None) as wire:
        work()
    return wire.calls


def kill_at(work: Callable[[], object], at: int) -> bool:
    """Run `work` in a forked child that SIGKILLs itself at file-changing call number `at`.
    True if it was killed, False if it finished first."""

    def armed() -> None:
        with Tripwire(at):
            work()

    return _died_of_sigkill(_fork(armed))


def _fork(work: Callable[[], object]) -> int:
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    return pid


def _died_of_sigkill(pid: int) -> bool:
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return True
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return False
    raise RuntimeError(f"child failed: wait status {status:#x}")


def run_forked(work: Callable[[], object]) -> float:
    """Run `work` in a forked child to the end; how long it took, fork to exit."""
    begin = time.perf_counter()
    if _died_of_sigkill(_fork(work)):
        raise RuntimeError("killed")
    return time.perf_counter() - begin


def kill_after(work: Callable[[], object], delay: float) -> bool:
    """Run `work` in a forked child and SIGKILL it after `delay` seconds. True if it was killed
    before it finished."""
    pid = _fork(work)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # a child that finished is a zombie until waited for: still there
    return _died_of_sigkill(pid)


Kill = Callable[[Callable[[], object]], bool]
"""Runs some work in a child and kills it at some point; True if it died before finishing."""


def even_points(total: int, count: int) -> list[int]:
    """`count` kill points spread evenly over 1..total (all of them if there are fewer)."""
    if count >= total:
        return list(range(1, total + 1))
    return sorted({1 + round(i * (total - 1) / max(1, count - 1)) for i in range(count)})


# --------------------------------------------------------------------------- races


def _racer(barrier: Any, results: Any, index: int, work: Callable[[int, int], Any], rounds: int) -> None:
    for r in range(rounds):
        barrier.wait()
        try:
            results.put((r, index, work(index, r), None))
        except BaseException as e:
            results.put((r, index, None, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        barrier.wait()


def race(
    work: Callable[[int, int], Any],
    processes: int,
    rounds: int,
    *,
    before_round: Callable[[int], None] = lambda r: None,
    after_round: Callable[[int, list[Any]], None] = lambda r, results: None,
    timeout: float = 120,
) -> None:
    """Start `processes` spawned processes; for each round, run `before_round(r)` here, release
    every process at once to run ``work(index, r)`` (a module-level function), wait for all of
    them, then call ``after_round(r, results)`` with their results (in index order).
    A process that raised fails the race."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1, timeout=timeout)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(barrier, results, i, work, rounds), daemon=True) for i in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        for r in range(rounds):
            before_round(r)
            barrier.wait()  # go
            barrier.wait()  # all done
            got = sorted((results.get(timeout=timeout) for _ in range(processes)), key=lambda x: x[1])
            errors = [e for _, _, _, e in got if e is not None]
            if errors:
                raise AssertionError(f"round {r}: {len(errors)} process(es) failed:\n{errors[0]}")
            after_round(r, [value for _, _, value, _ in got])
    except BaseException:
        barrier.abort()  # (only on failure: aborting a barrier that just released breaks it for its waiters)
        raise
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
