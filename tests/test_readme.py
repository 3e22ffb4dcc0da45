"""The README's walkthrough works as written: on a fresh clone of the repository, after the
quick start's install step, its shell blocks run in order in one shell, against a local
S3-protocol server, and leave the clone as it was."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def readme_section(title: str) -> str:
    readme = (REPO / "README.md").read_text()
    return readme.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def walkthrough_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", readme_section("Walkthrough"), flags=re.S)


def test_the_walkthrough_has_every_step() -> None:
    text = "\n".join(walkthrough_blocks())
    for command in (
        ". .venv/bin/activate",
        'cd "$(mktemp -d)"',
        "atpack pack",
        "atpack sign",
        "atpack push",
        "atpack pull",
        "atpack populate",
        "atpack inspect my-model",
        "atpack verify my-model",
        "atpack.load_cache_artifacts('my-model')",
        "atpack report",
    ):
        assert command in text


def test_the_quick_start_and_ci_install_the_same_way() -> None:
    """.ci/run runs the README's test command, as written there."""
    quick = re.findall(r"```sh\n(.*?)```", readme_section("Quick start"), flags=re.S)[0]
    test_command = quick.strip().splitlines()[-1]
    assert test_command == (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "'.[all]'" in quick.splitlines()[1]  # the first command installs what the walkthrough uses


def install_like_the_quick_start(clone: Path) -> None:
    """The quick start's first command, `python3 -m venv .venv && .venv/bin/pip install -e
    '.[all]' torch==2.13.0`, without downloading torch again: the new venv sees the packages of
    the one running the tests (a .pth file naming its site-packages) and pip installs the clone
    alone (--no-deps). The demo that command runs next is not part of the walkthrough."""
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True, timeout=120)
    new_site = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(new_site) / "_tests_parent_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(clone / ".venv" / "bin" / "pip"), "install", "-q", "--no-deps", "-e", f"{clone}[all]"],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_the_walkthrough_runs_as_written_on_a_fresh_clone(s3_server: Any, tmp_path: Path) -> None:
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("a fresh clone needs the repository's git history")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", REPO.as_uri(), str(clone)], check=True, timeout=120)
    install_like_the_quick_start(clone)
    s3_server.client().create_bucket(Bucket="atpack-store")
    (tmp_path / "scratch").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
        "AWS_ENDPOINT_URL": s3_server.storage_options["client_kwargs"]["endpoint_url"],
        "ATPACK_CACHE_DIR": str(tmp_path / "atpack-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "TRITON_CACHE_DIR": str(tmp_path / "triton"),
        "TMPDIR": str(tmp_path / "scratch"),  # where `mktemp -d` makes the scratch folder
        "PATH": "/usr/local/bin:/usr/bin:/bin",  # no atpack on it until the walkthrough activates the venv
    }
    blocks = walkthrough_blocks()
    script = "\n".join(f"echo '@@ block {i}'\n{block}" for i, block in enumerate(blocks))
    script += '\necho "@@ atpack $(command -v atpack)"\necho "@@ scratch $PWD"\n'
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    outputs = re.split(r"^@@ block \d+\n", result.stdout, flags=re.M)[1:]
    assert len(outputs) == len(blocks)
    tail = dict(line[3:].split(" ", 1) for line in outputs[-1].splitlines() if line.startswith("@@ "))
    assert tail["atpack"] == str(clone / ".venv" / "bin" / "atpack")  # the clone's install, activated
    scratch = Path(tail["scratch"])
    assert scratch.parent == tmp_path / "scratch"

    assert "packed 96 artifacts" in outputs[1] and outputs[1].rstrip().endswith("every digest matches")
    assert "signed mlp-h100.atpack with key" in outputs[2]
    assert "tagged mlp-h100" in outputs[3] and outputs[3].rstrip().splitlines()[-1].startswith("mlp-h100\tsha256:")
    assert "pulled sha256:" in outputs[4] and "would populate" in outputs[4]
    assert "signature verified: trusted key" in outputs[4]
    last = outputs[5]
    assert "NVIDIA H100 80GB HBM3" in last and "96 skipped" in last and "every digest matches, signed by key" in last
    page = (scratch / "mlp-h100.html").read_text()
    assert len(page) > 10_000 and ": verified with release.pub</p>" in page
    # the key pair, the packs and the pages are in the scratch folder; the clone is as it was
    assert (scratch / "release.key").exists()
    assert not [p for p in clone.rglob("*.key") if ".venv" not in p.parts]
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True)
    assert status.returncode == 0 and status.stdout == b""
