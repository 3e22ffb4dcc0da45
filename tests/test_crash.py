"""Crash safety: a populate or a pack write killed with SIGKILL at any point leaves nothing that
torch, triton or a pack reader could take for a result, and the next run completes the work.

The kill loops run in a fresh interpreter (`tests/programs/crash.py`, which forks once per kill
point; the loops are in `tests/reliability.py`, the kill points and the checks in
`atpack.testing.faults`). The scenario: a pack of every kind populate writes as files
(``.best_config``, ``.kernel_perf``, ``@triton.autotune`` results, Triton kernel folders with
blobs in shared frames and in frames of their own, and GEMM timings merged into an existing
timing file), populated into cache folders that already hold files.

After each kill, every visible file in the cache folders is byte-identical to what was there
before or to what a full run writes; the only other names are hidden temporary files
(``.atpack-*``); a Triton group file (which makes a kernel visible) exists only once every file
it names is complete. Then a rerun must end with every file right. `tools/bench_reliability.py`
runs the same loops at a larger scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from reliability import CrashResult

from atpack.files import STALE_SECONDS, CacheDir
from atpack.storage import publish

PROGRAM = Path(__file__).parent / "programs" / "crash.py"


def crash(mode: str, workdir: Path, *args: str) -> CrashResult:
    done = subprocess.run(
        [sys.executable, str(PROGRAM), mode, str(workdir), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = CrashResult.from_json(json.loads(done.stdout))
    print(
        f"{result.scenario}: kill points: {result.kill_points} (of {result.calls} calls; {result.killed} killed, "
        f"{result.interrupted} with work half done), partial files: {result.partial_files}, "
        f"partial packs: {result.partial_packs}, foreign names: {result.foreign_files}, "
        f"orphan group files: {result.orphan_groups}, incomplete reruns: {result.incomplete_after_rerun}, "
        f"temporary files left: {result.temporaries_left}, {result.seconds:.1f} s"
    )
    return result


def assert_no_damage(result: CrashResult) -> None:
    assert result.partial_files == 0, result.examples
    assert result.foreign_files == 0, result.examples
    assert result.orphan_groups == 0, result.examples
    assert result.odd_temporaries == 0, result.examples
    assert result.partial_packs == 0, result.examples
    assert result.incomplete_after_rerun == 0, result.examples


def test_populate_killed_at_each_of_its_writes_leaves_only_whole_files_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    result = crash("populate", tmp_path)  # every file-changing call: open, mkdir, write (half of it), rename
    assert result.kill_points == result.calls >= 150 and result.files >= 40
    assert result.killed == result.kill_points
    assert result.interrupted >= result.kill_points - 5  # nearly every kill lands with work half done
    assert_no_damage(result)


def test_populate_killed_by_its_parent_after_random_delays_leaves_only_whole_files(tmp_path: Path) -> None:
    result = crash("random", tmp_path, "--trials", "40", "--seed", "7")
    assert result.kill_points == 40 and result.interrupted >= 1
    assert_no_damage(result)


def test_a_pack_write_killed_at_each_of_its_writes_never_leaves_a_partial_pack_at_its_url(tmp_path: Path) -> None:
    # every other run replaces an older pack at the URL: it stays until the new one is complete
    result = crash("create", tmp_path, "--scale", "kernels=8")
    assert result.kill_points == result.calls >= 15 and result.killed == result.kill_points
    assert result.interrupted >= result.kill_points - 3  # every kill before the rename leaves the old pack
    assert_no_damage(result)


def test_the_checks_catch_a_populate_that_writes_files_in_place(tmp_path: Path) -> None:
    # the negative control: without the temporary file and the rename, kills leave partial files
    result = crash("populate", tmp_path, "--points", "40", "--in-place-writes")
    assert result.partial_files > 0 and result.incomplete_after_rerun > 0


def test_a_later_writer_removes_the_stale_temporaries_of_killed_ones(tmp_path: Path) -> None:
    folder = tmp_path / "ab"
    folder.mkdir()
    stale, recent, foreign = folder / ".atpack-123-beef-0.tmp", folder / ".atpack-456-cafe-0.tmp", folder / ".x.tmp"
    for path in (stale, recent, foreign):
        path.write_bytes(b"half a file")
    old = time.time() - STALE_SECONDS - 60
    for path in (stale, foreign):
        os.utime(path, (old, old))
    root = CacheDir(str(tmp_path))
    root.write(root.path("ab/c.best_config"), b"{}")
    # the killed writer's old file goes; a writer that may still be running, and others' files, stay
    assert sorted(p.name for p in folder.iterdir()) == sorted([recent.name, foreign.name, "c.best_config"])


def test_a_later_write_of_a_pack_removes_what_a_killed_write_of_it_left(tmp_path: Path) -> None:
    target = tmp_path / "model.atpack"
    stale, recent = tmp_path / ".model.atpack.0123456789ab.tmp", tmp_path / ".model.atpack.ba9876543210.tmp"
    other = tmp_path / ".other.atpack.0123456789ab.tmp"
    for path in (stale, recent, other):
        path.write_bytes(b"half a pack")
    old = time.time() - STALE_SECONDS - 60
    for path in (stale, other):
        os.utime(path, (old, old))
    with publish(str(target)) as sink:
        sink.write(b"a whole pack")
    # this pack's abandoned temporary goes; one that may still be written, and other packs', stay
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recent.name, other.name, target.name])
    assert target.read_bytes() == b"a whole pack"
