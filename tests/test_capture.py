"""`atpack.capture()` leaves the process as it found it, whatever happens in its block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "programs"


@pytest.mark.parametrize("imported", ["early", "late"])
def test_every_patch_a_capture_makes_is_undone_when_its_block_raises(imported: str) -> None:
    result = subprocess.run(
        [sys.executable, str(PROGRAMS / "capture_undo.py"), imported], capture_output=True, text=True, timeout=300
    )
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
