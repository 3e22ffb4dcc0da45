"""The `atpack` command, run as users run it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from h100_sample import ENVIRONMENT, Sample

REPO = Path(__file__).resolve().parent.parent
MINIMAL = REPO / "spec" / "vectors" / "minimal.atpack"


def atpack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atpack", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=300,
    )


def test_inspect_prints_environments_and_kinds() -> None:
    result = atpack("inspect", str(MINIMAL))
    assert result.returncode == 0
    assert "atpack format 1.0" in result.stdout
    assert "1  inductor.best_config/1" in result.stdout
    assert "annotation org.atpack.vector = minimal" in result.stdout


def test_inspect_json_is_machine_readable() -> None:
    data = json.loads(atpack("inspect", "--json", str(MINIMAL)).stdout)
    assert data["format"] == [1, 0]
    assert [a["kind"] for a in data["artifacts"]] == ["inductor.best_config/1"]
    assert data["artifacts"][0]["artifact"]["num_warps"] == 16


def test_verify_accepts_a_good_pack() -> None:
    result = atpack("verify", str(MINIMAL))
    assert result.returncode == 0 and result.stdout.startswith("ok: ")


def test_verify_names_the_first_bad_entry_in_one_line(tmp_path: Path) -> None:
    data = bytearray((REPO / "spec" / "vectors" / "h100-subset.atpack").read_bytes())
    data[100] ^= 0xFF  # inside frame 0
    bad = tmp_path / "bad.atpack"
    bad.write_bytes(bytes(data))
    result = atpack("verify", str(bad))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "frame 0" in result.stderr


def test_errors_show_a_traceback_only_when_asked(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.atpack")
    assert "Traceback" not in atpack("inspect", missing).stderr
    assert "Traceback" in atpack("inspect", "--debug", missing).stderr
    assert "Traceback" in atpack("inspect", missing, env={"ATPACK_DEBUG": "1"}).stderr


def test_bad_usage_exits_2() -> None:
    assert atpack("populate").returncode == 2
    assert atpack("frobnicate").returncode == 2


def test_pack_then_populate_from_the_command_line(h100_sample: Sample, tmp_path: Path) -> None:
    pack = str(tmp_path / "out" / "sample.atpack")
    made = atpack(
        "pack",
        "--inductor-dir",
        str(h100_sample.inductor),
        "--triton-dir",
        str(h100_sample.triton),
        "--environment",
        str(ENVIRONMENT),
        "--annotate",
        "org.example.model=mlp",
        "-o",
        pack,
    )
    assert made.returncode == 0, made.stderr
    assert "packed 96 artifacts" in made.stdout

    dirs = ["--inductor-dir", str(tmp_path / "inductor"), "--triton-dir", str(tmp_path / "triton")]
    plain = atpack("populate", pack, *dirs)
    assert plain.returncode == 0 and "96 skipped" in plain.stdout
    assert "device_name: recorded 'NVIDIA H100 80GB HBM3', found none" in plain.stdout

    dry = atpack("populate", pack, *dirs, "--ignore-environment", "--dry-run")
    assert "94 to be written" in dry.stdout and not (tmp_path / "triton").exists()

    full = atpack("populate", pack, *dirs, "--ignore-environment", "--json")
    report = json.loads(full.stdout)
    assert report["ignored_environment"] is True
    assert {o["action"] for o in report["outcomes"]} == {"written", "skipped"}  # host modules need trust
    assert len(list((tmp_path / "triton").rglob("__grp__*.json"))) == 87


def test_env_prints_this_machines_fingerprint() -> None:
    data = json.loads(atpack("env", "--json").stdout)
    assert data["python_abi"] == sys.implementation.cache_tag


@pytest.mark.parametrize("argv", [["--help"], ["pack", "--help"], ["populate", "--help"]])
def test_help_works(argv: list[str]) -> None:
    result = atpack(*argv)
    assert result.returncode == 0 and "usage: atpack" in result.stdout
