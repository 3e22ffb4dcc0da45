"""`import atpack` stays light: no torch, no triton."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout


def test_import_atpack_does_not_import_torch_or_triton() -> None:
    code = (
        "import sys, atpack, atpack.cli, atpack.pack, atpack.collect, atpack.populate, atpack.env; "
        "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))"
    )
    assert _run(code).strip() == "[]"


def test_inspecting_a_pack_does_not_import_torch_or_triton() -> None:
    code = (
        "import sys; from atpack.cli import main; main(['inspect', 'spec/vectors/minimal.atpack']); "
        "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))"
    )
    assert _run(code).strip().splitlines()[-1] == "[]"
