"""The README's quick start works as written: its first command, run in a fresh copy of the
repository (a new venv, the sample in the repo), exits 0 and shows the restore as the README
describes it. The second command is what `.ci/run` runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _quick_start() -> list[str]:
    """The commands of the README's quick start, in order (the line after each ``# N.``)."""
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert block, "the README has no quick start block"
    lines = block.group(1).splitlines()
    return [lines[i + 1] for i, line in enumerate(lines) if re.match(r"# \d\. ", line)]


def _copy_of_repo(target: Path) -> None:
    """The repository's tracked files, as a fresh clone holds them (no venv, no build)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    names = [n for n in listed.stdout.decode().split("\0") if n] if listed.returncode == 0 else []
    if not names:  # not a git checkout (an sdist): everything but what a run leaves
        shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".git"))
        return
    for name in names:
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)


def test_the_ci_runs_the_readmes_test_command() -> None:
    assert _quick_start()[1] in (REPO / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
def test_the_readmes_first_command_runs_the_demo_as_described(tmp_path: Path) -> None:
    repo = tmp_path / "atpack"
    repo.mkdir()
    _copy_of_repo(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "ATPACK_", "TORCHINDUCTOR_"))}
    env.pop("TRITON_CACHE_DIR", None)
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    result = subprocess.run(
        ["sh", "-c", _quick_start()[0]], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # the pack's artifacts are explained on this machine (made on an H100, with torch 2.11)...
    assert re.search(r"skipped \d+ triton\.kernel/1: .*compute_capability: recorded '9\.0'", out)
    # ...then restored whole, file by file as in the sample
    assert re.search(r"96 artifacts: 96 written", out)
    assert re.search(r"inductor: 5 files byte-identical", out)
    assert re.search(r"triton  : \d+ files byte-identical, 87 __grp__ files listing them at the new folder", out)
    assert re.search(r"[1-9]\d* IR files left out \(no warm start reads them; --with-ir keeps them\)", out)
    assert "MISMATCH" not in out
    assert out.rstrip().endswith("restore checked: every file written is the sample's")
    assert (repo / "atpack-demo" / "store" / "h100-mlp.atpack").is_file()
