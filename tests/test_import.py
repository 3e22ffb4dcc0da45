"""`import atpack` stays light: no torch, no triton, no test tooling."""

from __future__ import annotations

import ast
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
        "from atpack.store import Store\n"
        f"print(Store({str(tmp_path / 'store')!r}).push({str(tmp_path / 'copy.atpack')!r}))\n"
        "print(sorted(m for m in ('atpack.files', 'fcntl') if sys.modules.get(m)))"
    )
    assert _run(code).strip().splitlines()[-1] == "[]"


def test_import_atpack_does_not_import_its_test_tooling() -> None:
    code = (
        "import sys, atpack, atpack.cli, atpack.pack, atpack.storage, atpack.store, atpack.populate; "
        "atpack.Pack, atpack.create, atpack.populate; "  # the lazy names, imported on first use
        "print(sorted(m for m in sys.modules if m.startswith('atpack.testing')))"
    )
    assert _run(code).strip() == "[]"


def test_no_library_module_imports_the_test_tooling() -> None:
    for path in sorted((REPO / "atpack").rglob("*.py")):
        if "testing" in path.relative_to(REPO / "atpack").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):  # `from . import testing`, `from .testing import x`
                names = [f"{node.module or ''}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                relative = isinstance(node, ast.ImportFrom) and node.level > 0
                assert not ((relative or parts[0] == "atpack") and "testing" in parts), (
                    f"{path.relative_to(REPO)}:{node.lineno} imports {name}"
                )


def test_the_test_tooling_imports_without_moto() -> None:
    """moto is a test-only dependency: atpack.testing imports it only when an S3 server starts."""
    code = (
        "import sys, atpack.testing, atpack.testing.packs, atpack.testing.s3, atpack.testing.faults; "
        "print(sorted(m for m in sys.modules if m == 'moto' or m.startswith('moto.')))"
    )
    assert _run(code).strip() == "[]"


def test_starting_an_s3_server_without_moto_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['moto'] = None\n"  # any `import moto...` now fails, as if it were not installed
        "from atpack.testing.s3 import S3Server\n"
        "try:\n"
        "    S3Server()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    message = _run(code)
    assert message.count("\n") == 1 and "pip install 'moto[server]'" in message, message
