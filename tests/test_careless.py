"""Careless use, through the command line: interrupted commands, odd environments, values atpack
does not understand, switches that do not switch. Each test runs `atpack` as a process of its own
and looks at the files before and after."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from h100_sample import Sample

REPLAY_MARKER = "atpack-replay.json"


@pytest.fixture(scope="module")
def sample_pack(h100_sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Sample(h100_sample_root).pack(tmp_path_factory.mktemp("pack") / "sample.atpack")


def run(*argv: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATPACK_") and k != "LOCAL_RANK"}
    return subprocess.run(
        [sys.executable, *argv], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def atpack(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "atpack", *args, **env)


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` and a digest of its bytes (hidden temporaries included)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def temporaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".atpack-*")]


# --------------------------------------------------------------------------- interrupted


INTERRUPT_AT = """
import os, signal, sys
from atpack.cli import main

count = [0]

def interrupted(put):  # the signal arrives while the Nth file is being put in place (a link or a rename)
    def call(*args, **kwargs):
        count[0] += 1
        if count[0] == int(sys.argv[2]):
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        return put(*args, **kwargs)
    return call

os.replace, os.link = interrupted(os.replace), interrupted(os.link)
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("at", [1, 40, 200])
def test_an_interrupted_populate_leaves_no_temporary_and_a_rerun_completes_it(
    sample_pack: Path, tmp_path: Path, sig: str, at: int
) -> None:
    caches = tmp_path / "caches"
    dirs = ["--inductor-dir", str(caches / "i"), "--triton-dir", str(caches / "t")]
    populate = ["populate", str(sample_pack), "--ignore-environment", *dirs]
    stopped = run("-c", INTERRUPT_AT, sig, str(at), *populate)
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert stopped.stderr.splitlines()[-1] == "atpack: interrupted"
    assert temporaries(caches) == []
    rerun = atpack(*populate)
    assert rerun.returncode == 0, rerun.stderr
    reference = tmp_path / "reference"
    whole = atpack(
        "populate",
        str(sample_pack),
        "--ignore-environment",
        "--inductor-dir",
        str(reference / "i"),
        "--triton-dir",
        str(reference / "t"),
    )
    assert whole.returncode == 0
    assert {k for k in tree(caches)} == {k for k in tree(reference)}  # the same files, none missing, none extra


def test_a_killed_populate_leaves_temporaries_that_the_next_one_does_not_mistake_for_results(
    sample_pack: Path, tmp_path: Path
) -> None:
    """SIGKILL runs no cleanup: what it leaves is hidden (`.atpack-*`), never a cache file torch reads."""
    caches = tmp_path / "caches"
    dirs = ["--inductor-dir", str(caches / "i"), "--triton-dir", str(caches / "t")]
    populate = ["populate", str(sample_pack), "--ignore-environment", *dirs]
    killed = run("-c", INTERRUPT_AT, "SIGKILL", "40", *populate)
    assert killed.returncode == -signal.SIGKILL
    rerun = atpack(*populate)
    assert rerun.returncode == 0, rerun.stderr
    visible = [name for name in tree(caches) if not Path(name).name.startswith(".atpack-")]
    assert "96 artifacts" in rerun.stdout and len(visible) > 250


# --------------------------------------------------------------------------- odd environments


def test_a_path_the_terminals_encoding_cannot_show_is_printed_escaped(sample_pack: Path, tmp_path: Path) -> None:
    caches = tmp_path / "cachés-キャッシュ"
    result = atpack(
        "populate",
        str(sample_pack),
        "--ignore-environment",
        "--inductor-dir",
        str(caches / "i"),
        "--triton-dir",
        str(caches / "t"),
        PYTHONIOENCODING="ascii",
        LC_ALL="C",
        LANG="C",
    )
    assert result.returncode == 0, result.stderr
    assert "cach\\xe9s-\\u30ad" in result.stdout and "94 written" in result.stdout
    assert len(temporaries(caches)) == 0 and len(tree(caches / "t")) > 250


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("LOCAL_RANK", "abc", ["env"]),
        ("ATPACK_REPLAY", "maybe", ["replay", "status"]),
        ("ATPACK_DEBUG", "sometimes", ["env"]),
        ("ATPACK_TIMEOUT", "soon", ["pull", "memory://nowhere", "tag"]),
    ],
)
def test_a_value_atpack_does_not_understand_is_an_error_naming_the_variable(
    variable: str, value: str, command: list[str], tmp_path: Path
) -> None:
    result = atpack(*command, **{variable: value}, HOME=str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"atpack: error: {variable}={value!r}: ")
    assert "Traceback" not in result.stderr


def test_a_populate_with_an_unreadable_local_rank_writes_nothing(sample_pack: Path, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    result = atpack("populate", str(sample_pack), "--inductor-dir", str(caches / "i"), LOCAL_RANK="-1")
    assert result.returncode == 2 and "LOCAL_RANK='-1': not a device index" in result.stderr
    assert not caches.exists() or tree(caches) == {}


# --------------------------------------------------------------------------- switches say what they do


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({"ATPACK_REPLAY": "0"}, "ATPACK_REPLAY='0' turns it off in every process"),
        ({"TORCH_DEVICE_BACKEND_AUTOLOAD": "0"}, "TORCH_DEVICE_BACKEND_AUTOLOAD='0' keeps torch from loading plug-ins"),
        ({"TORCH_DEVICE_BACKEND_AUTOLOAD": "true"}, "TORCH_DEVICE_BACKEND_AUTOLOAD='true' keeps torch from loading"),
    ],
)
def test_replay_on_says_it_stays_off_where_a_variable_keeps_it_off(
    tmp_path: Path, variables: dict[str, str], reason: str
) -> None:
    folder = tmp_path / "inductor"
    result = atpack("replay", "on", "--inductor-dir", str(folder), **variables)
    assert result.returncode == 0, result.stderr
    assert (folder / REPLAY_MARKER).is_file()  # the marker is there, for when the variable goes
    assert result.stdout.splitlines()[-1].startswith(f"replay off for processes using {folder}: {reason}")
    status = atpack("replay", "--inductor-dir", str(folder))
    assert status.stdout.splitlines()[-1] == f"replay on for processes using {folder}: {folder / REPLAY_MARKER} " + (
        "(`atpack replay off` removes it)"
    )


def test_replay_off_and_status_say_what_was_there(tmp_path: Path) -> None:
    folder = tmp_path / "inductor"
    off = atpack("replay", "off", "--inductor-dir", str(folder))
    assert off.returncode == 0 and off.stdout.splitlines()[0] == f"no {folder / REPLAY_MARKER} to remove"
    assert "replay off" in off.stdout.splitlines()[-1]
    atpack("replay", "on", "--inductor-dir", str(folder))
    off = atpack("replay", "off", "--inductor-dir", str(folder))
    assert off.stdout.splitlines()[0] == f"removed {folder / REPLAY_MARKER}" and not (folder / REPLAY_MARKER).exists()
    forced = atpack("replay", "status", "--inductor-dir", str(folder), ATPACK_REPLAY="on")
    assert forced.stdout.splitlines()[-1].endswith("ATPACK_REPLAY='on' turns it on in every process")
