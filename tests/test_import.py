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


def test_packs_are_read_and_written_where_fcntl_does_not_exist(tmp_path: Path) -> None:
    """Windows has no `fcntl`: reading, verifying and writing packs, locally or in a store,
    does not need the cache-folder writer (which locks with it)."""
    code = (
        "import sys; sys.modules['fcntl'] = None\n"  # any `import fcntl` now fails
        "import atpack\n"
        "pack = atpack.open('spec/vectors/minimal.atpack'); pack.verify()\n"
        f"with atpack.create({str(tmp_path / 'copy.atpack')!r}) as w:\n"
        "    w.copy_from(pack, pack.artifacts)\n"
        "from atpack.registry import Store\n"
        f"print(Store({str(tmp_path / 'store')!r}).push({str(tmp_path / 'copy.atpack')!r}))\n"
        "print(sorted(m for m in ('atpack.files', 'fcntl') if sys.modules.get(m)))"
    )
    assert _run(code).strip().splitlines()[-1] == "[]"
