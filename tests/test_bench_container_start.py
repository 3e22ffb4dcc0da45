"""A smoke run of tools/bench_container_start.py (`--quick`: the sample only, 2 runs): it runs to
the end, every method leaves the tree populate leaves, and it writes its results. No timing is
asserted: the committed results under tools/results/ are the measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_writes_its_results(tmp_path: Path) -> None:
    target = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()  # a memory folder is quickest
    out = tmp_path / "results"
    tool = str(REPO / "tools" / "bench_container_start.py")
    done = subprocess.run(
        [sys.executable, tool, "--quick", "--targets", target, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "bench_container_start.json").read_text())
    sample = result["targets"][target]["H100 sample"]
    assert all(len(times) == 2 for times in sample["seconds"].values())
    assert set(sample["median_seconds"]) >= {
        "atpack populate --ignore-environment --trust-pickles",
        "floor: tar -xf",
        "floor: python, atomic writes",
    }
    assert sample["tree"]["files"] > 500  # the sample's kernels (metadata and binary), in two Triton folders
    assert result["acceptance"] and all(isinstance(a["holds"], bool) for a in result["acceptance"])
    assert "Where the time goes" in (out / "bench_container_start.md").read_text()
