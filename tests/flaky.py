"""Scenarios on flaky storage, shared by `test_flaky_storage.py` and `tools/flaky_storage.py`:
a pack on the S3 test server, read or written through a `FaultInjectingProxy`, with what
happened counted (requests, faults injected, atpack's own retries, time, outcome). And the
content of a large store, made cheaply (`store_objects`), for `test_store.py` and
`tools/bench_store.py`.

Plain functions, no fixtures (like `packtools`)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import msgspec

import atpack
from atpack import store
from atpack.artifacts import KernelFile
from atpack.digest import digest_bytes
from atpack.registry import PackRecord, _frame, _record_digest
from atpack.testing.s3 import FaultInjectingProxy

MiB = 1 << 20
ENV = atpack.Environment(triton_version="3.4.0", device_name="NVIDIA H100 80GB HBM3")


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
    with atpack.create(url, storage_options=storage_options, **WRITE_OPTIONS) as writer:
        fill(writer, blobs, name)


def pack_bytes(blobs: dict[str, bytes], name: str = "kernel") -> bytes:
    """The bytes `write_pack` writes for `blobs` (the writer is deterministic)."""
    out = io.BytesIO()
    writer = atpack.PackWriter(out, **WRITE_OPTIONS)
    fill(writer, blobs, name)
    writer.finish()
    return out.getvalue()


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count += 1


@contextlib.contextmanager
def counting_retries() -> Iterator[_RetryCounter]:
    """Counts the retries atpack's store makes (it logs each at DEBUG)."""
    logger = logging.getLogger("atpack.store")
    counter = _RetryCounter()
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
    policy: store.Retry | None = None,
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
                    assert pack.read_blob(digest) == data
                    outcome.reads += 1
                for digest, data in pack.read_blobs(list(blobs)):
                    assert data == blobs[digest]
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
