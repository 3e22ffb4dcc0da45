"""Populate creates files; it never replaces one another writer made after it looked.

Populate plans what to write from what the cache folder holds, then writes. A file another writer
(a training process, a second populate) creates in between is theirs: populate lands each new file
through a hard link, which fails where a file is already there (a rename would replace it), and
reports that artifact failed with a one-line `FileCreatedMeanwhileError`; the kernel is not made
visible (no group file), and the rest of the pack goes on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_hostile import Site

import atpack
from atpack.files import CacheDir
from atpack.testing.packs import TRITON_ENV, pack_of, triton_kernel

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
