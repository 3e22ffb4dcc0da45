"""A pack made under another torch build, Triton release or build, or GPU: nothing of it is read
by torch or Triton as this machine's own, through their own read paths; the same environment
hits (tests/test_read_paths.py). Populate compares releases and the device itself, and leaves
the build keys to the key torch and Triton look files up by (spec/FORMAT.md, §9): what it
writes for another build lands where no lookup here finds it, and a dry run names the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h100_sample
import msgspec
import pytest

import atpack
from atpack.collect import pack_caches
from atpack.env import LocalEnvironment
from atpack.populate import populate

PROGRAMS = Path(__file__).parent / "programs"
pytestmark = pytest.mark.slow
ANOTHER_TORCH = "ab" * 32
ANOTHER_TRITON = "3.9.0-another-build"


def _run(program: str, *args: str, **env: str) -> Any:
    result = subprocess.run(
        [sys.executable, str(PROGRAMS / program), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=PROGRAMS,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _here(**changes: str | None) -> atpack.Environment:
    return msgspec.structs.replace(LocalEnvironment().snapshot(), **changes)


@pytest.fixture
def kernel_sources(h100_sample_root: Path, tmp_path: Path) -> list[str]:
    return h100_sample.kernel_sources(h100_sample_root, tmp_path)


def test_records_of_another_torch_build_are_never_a_hit(kernel_sources: list[str], tmp_path: Path) -> None:
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    _run(
        "inductor_kernel.py",
        "tune",
        *kernel_sources,
        TORCHINDUCTOR_CACHE_DIR=str(made),
        TORCH_KEY_OF_ANOTHER_BUILD=ANOTHER_TORCH,
    )
    pack = tmp_path / "p.atpack"
    pack_caches(pack, inductor_dir=str(made), sources=["inductor"], environment=_here(torch_key=ANOTHER_TORCH))

    exact = populate(pack, inductor_dir=str(tmp_path / "dry"), triton_dir=str(tmp_path / "t"), dry_run=True)
    assert [o.action for o in exact.outcomes] == ["skipped", "skipped"]
    assert all(o.detail.startswith(f"torch_key: recorded '{ANOTHER_TORCH[:37]}...'") for o in exact.outcomes)

    report = populate(pack, inductor_dir=str(fresh), triton_dir=str(tmp_path / "t"))
    assert report.count("written") == 2  # the same release: populate leaves the build to torch's lookup
    read = _run("inductor_kernel.py", "read", *kernel_sources, TORCHINDUCTOR_CACHE_DIR=str(fresh))
    assert [k["autotune_cache_state"] for k in read] == ["miss", "miss"]  # torch looks under its own key


def test_autotune_results_of_another_triton_build_are_never_a_hit(tmp_path: Path) -> None:
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    tuned = _run("triton_autotune.py", "--triton-key", ANOTHER_TRITON, TRITON_CACHE_DIR=str(made))
    assert tuned["bench_calls"] == 32
    pack = tmp_path / "p.atpack"
    pack_caches(pack, triton_dir=str(made), sources=["triton"], environment=_here(triton_key=ANOTHER_TRITON))
    report = populate(pack, inductor_dir=str(tmp_path / "i"), triton_dir=str(fresh))
    assert report.count("written") == 2
    warm = _run("triton_autotune.py", TRITON_CACHE_DIR=str(fresh))
    assert warm["bench_calls"] == 32 and warm["cache_hits"] == [False, False]  # tuned afresh


@pytest.mark.parametrize(
    ("field", "value"),
    [("triton_version", "3.1.0"), ("compute_capability", "8.0"), ("device_name", "NVIDIA A100-SXM4-80GB")],
)
def test_autotune_results_of_another_triton_release_or_gpu_are_not_placed(
    tmp_path: Path, field: str, value: str
) -> None:
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    _run("triton_autotune.py", TRITON_CACHE_DIR=str(made))
    pack = tmp_path / "p.atpack"
    pack_caches(pack, triton_dir=str(made), sources=["triton"], environment=_here(**{field: value}))
    report = populate(pack, inductor_dir=str(tmp_path / "i"), triton_dir=str(fresh))
    assert [o.action for o in report.outcomes] == ["skipped", "skipped"]
    assert all(o.detail.startswith(f"{field}: recorded '{value}'") for o in report.outcomes)
    assert not fresh.exists() or not any(fresh.iterdir())
    warm = _run("triton_autotune.py", TRITON_CACHE_DIR=str(fresh))
    assert warm["bench_calls"] == 32


def test_records_of_another_gpu_are_not_placed(kernel_sources: list[str], tmp_path: Path) -> None:
    """An H100's records on an H200: the same kernel source (compute capability 9.0, 132 SMs),
    so the same path; only the device name tells them apart, and populate compares it."""
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    _run("inductor_kernel.py", "tune", *kernel_sources, TORCHINDUCTOR_CACHE_DIR=str(made))
    pack = tmp_path / "p.atpack"
    pack_caches(
        pack, inductor_dir=str(made), sources=["inductor"], environment=_here(device_name="NVIDIA H100 80GB HBM3")
    )
    report = populate(pack, inductor_dir=str(fresh), triton_dir=str(tmp_path / "t"))
    assert [o.action for o in report.outcomes] == ["skipped", "skipped"]
    read = _run("inductor_kernel.py", "read", *kernel_sources, TORCHINDUCTOR_CACHE_DIR=str(fresh))
    assert [k["autotune_cache_state"] for k in read] == ["miss", "miss"]
