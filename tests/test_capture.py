"""`atpack.capture()` leaves the process as it found it, whatever happens in its block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from machine import Machine

PROGRAMS = Path(__file__).parent / "programs"


@pytest.mark.parametrize("imported", ["early", "late"])
def test_every_patch_a_capture_makes_is_undone_when_its_block_raises(imported: str, tmp_path: Path) -> None:
    machine = Machine(tmp_path)  # torch's default folders in the test's own (no marker of the developer's)
    result = machine.process([sys.executable, str(PROGRAMS / "capture_undo.py"), imported], cwd=PROGRAMS)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert set(outcome["inside"].values()) == {"atpack.seam"}  # the capture did patch them (through the seam)
    triton_own = {"listener": "__main__"} if "listener" in outcome["after"] else {"run": "triton.runtime.autotuner"}
    assert outcome["after"] == {
        "save": "torch._inductor.runtime.autotune_cache",
        "put_winner": "torch._inductor.triton_bundler",
        **triton_own,  # Triton's autotune listener back to none (3.8+), or its own run
    }
    assert outcome["fresh_recording_inside"] and outcome["own_recording_after"]
    assert outcome["waiting"]  # no import hook of the capture is left waiting


def test_a_fifo_planted_where_a_capture_reads_a_result_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO (or a device) in the Inductor folder where the capture reads a `.best_config`
    would block a plain open() forever: the capture reads only regular files."""
    inductor, planted = tmp_path / "inductor", "ab/" + "0" * 64 + ".best_config"
    code = f"""
import os, atpack
with atpack.capture(inductor_dir={str(inductor)!r}, triton_dir={str(tmp_path / "t")!r}) as cap:
    cap._saves = 1  # as if torch saved a record: the capture then reads the folder's records and modules
    os.makedirs({str(inductor / "ab")!r}, exist_ok=True)
    os.mkfifo({str(inductor / planted)!r})
print("done", sorted(cap.inductor_files))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("done") and planted in result.stdout  # seen, and passed over
