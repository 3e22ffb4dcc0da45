"""Populate creates files; it never replaces one another writer made after it looked, and never
waits without end for a lock someone else holds.

Populate plans what to write from what the cache folder holds, then writes. A file another writer
(a training process, a second populate) creates in between is theirs: populate lands each new file
through a hard link, which fails where a file is already there (a rename would replace it), and
reports that artifact failed with a one-line `FileCreatedMeanwhileError`; the kernel is not made
visible (no group file), and the rest of the pack goes on. The lock of a merged file (GEMM
timings) is made for this user alone; one another user owns is refused, and one held longer than
a minute is an error.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from test_hostile import Site

import atpack
from atpack import files
from atpack.adapters import inductor
from atpack.files import CacheDir
from atpack.testing.packs import TRITON_ENV, gemm_timings, pack_of, triton_kernel

THEIRS = b"written by another process meanwhile"


class CreateMeanwhile:
    """A progress callback that, when populate starts writing blobs (after its plan), creates
    `path` as another writer would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set_size(self, size: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(THEIRS)

    def relative_update(self, inc: int = 1) -> None:
        pass


def test_a_file_another_writer_creates_after_the_plan_is_kept(tmp_path: Path) -> None:
    site = Site(tmp_path)
    raced = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", b'{"name": "kernel_0"}'), ("kernel_0.cubin", b"A")])
    other = triton_kernel(TRITON_ENV.digest, 1, [("kernel_1.json", b'{"name": "kernel_1"}'), ("kernel_1.cubin", b"B")])
    blobs = (b'{"name": "kernel_0"}', b"A", b'{"name": "kernel_1"}', b"B")
    planted = site.triton / raced.cache_key / "kernel_0.cubin"
    report = site.populate(pack_of(raced, other, blobs=blobs), callback=CreateMeanwhile(planted))
    outcome = {o.key: o for o in report.outcomes}
    assert outcome[raced.key].action == "failed", report.format(verbose=True)
    assert outcome[raced.key].error == "FileCreatedMeanwhileError"
    assert "another writer created it meanwhile; theirs is kept" in outcome[raced.key].detail
    assert planted.read_bytes() == THEIRS
    assert not [n for n in os.listdir(planted.parent) if n.startswith("__grp__")]  # not made visible
    assert [n for n in os.listdir(planted.parent) if n.startswith(".atpack")] == []  # no temporary left
    assert outcome[other.key].action == "written"


def test_a_write_that_may_create_only_never_replaces(tmp_path: Path) -> None:
    root = CacheDir(str(tmp_path))
    path = root.path("ab/file")
    root.write(path, b"first", create=True)
    with pytest.raises(atpack.FileCreatedMeanwhileError, match="ab/file: another writer created it meanwhile"):
        root.write(path, b"second", create=True)
    assert (tmp_path / "ab" / "file").read_bytes() == b"first"
    root.write(path, b"first", create=True)  # the very bytes (a second populate of one pack): as good as written
    assert os.listdir(tmp_path / "ab") == ["file"]
    root.write(path, b"replaced")  # a write that may replace (a stale group file repaired)
    assert (tmp_path / "ab" / "file").read_bytes() == b"replaced"


def _locks(root: CacheDir, tmp_path: Path) -> Path:
    with root.locked("locks/x.atpack.lock"):
        pass
    return tmp_path / "locks" / "x.atpack.lock"


def test_a_lock_file_is_made_for_this_user_alone(tmp_path: Path) -> None:
    lock = _locks(CacheDir(str(tmp_path)), tmp_path)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600  # no one else can open it, so no one else can hold it


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_lock_file_another_user_owns_is_refused_not_waited_on(tmp_path: Path) -> None:
    root = CacheDir(str(tmp_path))
    lock = _locks(root, tmp_path)
    os.chown(lock, 65534, 65534)  # nobody's: they could hold it forever
    with pytest.raises(atpack.UnsafeContentError, match="belongs to another user"), root.locked("locks/x.atpack.lock"):
        pass


def test_a_lock_held_too_long_is_an_error_not_a_wait_without_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = CacheDir(str(tmp_path))
    lock = _locks(root, tmp_path)
    monkeypatch.setattr(files, "LOCK_WAIT_S", 0.3)
    holder = os.open(lock, os.O_RDWR)  # another open file: a holder flock tells apart from us
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        refused = pytest.raises(atpack.StorageError, match="held by another process for over 0 s")
        with refused, root.locked("locks/x.atpack.lock"):
            pass
        assert time.monotonic() - started < 5
    finally:
        os.close(holder)
    with root.locked("locks/x.atpack.lock"):  # released: taken at once
        pass


def test_a_gemm_timing_torch_saves_between_populates_read_and_write_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Torch rewrites its local cache file (atomically, without atpack's lock) whenever it tunes:
    a save that lands between populate's read and its write is merged again, never written over."""
    site = Site(tmp_path)
    ours = gemm_timings(TRITON_ENV.digest, 0)
    target = site.inductor / "cache" / ours.system.hash
    target.parent.mkdir(parents=True)
    torchs = {"system": {"hash": ours.system.hash}, "cache": {"addmm": {"[[8, 8]]": {"high": {"torch_1": 0.5}}}}}
    target.write_text(json.dumps(torchs, indent=4))
    real_merge_into, saves = inductor._merge_into, []

    def torch_saves_meanwhile(cache: dict[str, Any], artifact: Any) -> int:
        if not saves:  # torch tunes one more GEMM and writes its file whole, as write_atomic does
            saves.append(1)
            newer = json.loads(target.read_text())
            newer["cache"]["addmm"]["[[8, 8]]"]["high"]["torch_2"] = 0.25
            (target.parent / "newer").write_text(json.dumps(newer, indent=4))
            os.replace(target.parent / "newer", target)
        return real_merge_into(cache, artifact)

    monkeypatch.setattr(inductor, "_merge_into", torch_saves_meanwhile)
    report = site.populate(pack_of(ours))
    assert [o.action for o in report.outcomes] == ["merged"], report.format(verbose=True)
    merged = json.loads(target.read_text())["cache"]
    assert merged["addmm"]["[[8, 8]]"]["high"] == {"torch_1": 0.5, "torch_2": 0.25}  # torch's save kept
    assert set(merged) >= {"addmm", ours.entries[0].op}  # and the pack's added
