"""Populated caches are read by torch's and triton's own code, in a fresh process.

Inductor's `.best_config` lookup (the kernel decorator's autotune cache check) and Triton's
`check_disk_cache` both run on a CPU-only machine with a stand-in CUDA driver
(tests/programs/standin.py); only the launch and the benchmark are stubbed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h100_sample
import pytest

from atpack.collect import pack_caches
from atpack.populate import populate

PROGRAMS = Path(__file__).parent / "programs"
pytestmark = pytest.mark.slow


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


@pytest.fixture
def kernel_sources(h100_sample_root: Path, tmp_path: Path) -> list[str]:
    """The sample's reduction kernel (tuned by coordinate descent) and a pointwise kernel, as
    this torch loads them (`h100_sample.kernel_sources`)."""
    return h100_sample.kernel_sources(h100_sample_root, tmp_path)


def test_inductor_reads_a_populated_best_config_as_a_hit(kernel_sources: list[str], tmp_path: Path) -> None:
    made, fresh, empty = tmp_path / "made", tmp_path / "fresh", tmp_path / "empty"
    tuned = _run("inductor_kernel.py", "tune", *kernel_sources, TORCHINDUCTOR_CACHE_DIR=str(made))
    assert [k["autotune_cache_state"] for k in tuned] == ["miss", "miss"]

    pack_caches(tmp_path / "p.atpack", inductor_dir=str(made), sources=["inductor"])
    report = populate(tmp_path / "p.atpack", inductor_dir=str(fresh), triton_dir=str(tmp_path / "t"))
    assert report.count("written") == 2, report.format()

    read = _run("inductor_kernel.py", "read", *kernel_sources, TORCHINDUCTOR_CACHE_DIR=str(fresh))
    assert [k["autotune_cache_state"] for k in read] == ["hit", "hit"]
    assert [k["best"] for k in read] == [k["saved"] for k in tuned]
    control = _run("inductor_kernel.py", "read", *kernel_sources, TORCHINDUCTOR_CACHE_DIR=str(empty))
    assert [k["autotune_cache_state"] for k in control] == ["miss", "miss"]


def test_triton_hits_populated_autotune_results_without_benchmarking(tmp_path: Path) -> None:
    made, fresh, empty = tmp_path / "made", tmp_path / "fresh", tmp_path / "empty"
    tuned = _run("triton_autotune.py", TRITON_CACHE_DIR=str(made))
    assert tuned["bench_calls"] == 32 and tuned["cache_hits"] == [False, False]

    pack_caches(tmp_path / "p.atpack", triton_dir=str(made), sources=["triton"])
    report = populate(tmp_path / "p.atpack", inductor_dir=str(tmp_path / "i"), triton_dir=str(fresh))
    assert report.count("written") == 2, report.format()

    warm = _run("triton_autotune.py", TRITON_CACHE_DIR=str(fresh))
    assert warm == {"bench_calls": 0, "cache_hits": [True, True], "best": tuned["best"]}
    control = _run("triton_autotune.py", TRITON_CACHE_DIR=str(empty))
    assert control["bench_calls"] == 32


def test_a_recorded_coordinate_descent_result_is_not_searched_again(kernel_sources: list[str], tmp_path: Path) -> None:
    """Torch 2.8-2.14 lose the found_by_coordesc mark between reading a `.best_config` and
    launching: without atpack's replay the process searches again; with it, it does not."""
    reduction = kernel_sources[0]
    plain = _run("coordesc_replay.py", reduction, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "a"))
    assert plain["searches"] == 1 and plain["benchmarks"] == 1
    replayed = _run("coordesc_replay.py", reduction, "--replay", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "b"))
    del replayed["atpack_modules"]
    heuristics = "torch._inductor.runtime.triton_heuristics"
    assert replayed == {
        "searches": 0,
        "benchmarks": 0,
        "coordesc_returned_same": True,
        "marked": True,
        "autotune_chose_recorded": True,
        "patched": [  # what atpack stands in for, said by atpack.seam.patched()
            f"{heuristics}.CachingAutotuner.coordinate_descent_tuning",
            f"{heuristics}.CachingAutotuner.autotune_to_one_config",
            f"{heuristics}.check_autotune_cache",
        ],
    }


def test_a_capture_keeps_coordinate_descent_results_that_torch_saves_over(
    kernel_sources: list[str], tmp_path: Path
) -> None:
    """A re-run of autotuning saves coordinate descent's result again without its mark; the
    capture packs it as coordinate descent's, so a warm start does not search again."""
    result = _run(
        "capture_resave.py", kernel_sources[0], str(tmp_path / "p.atpack"), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "i")
    )
    assert result["file"] == {"num_warps": result["searched_num_warps"], "found_by_coordesc": False}
    assert result["pack"] == {"num_warps": result["searched_num_warps"], "found_by_coordesc": True}
    assert any("kept coordinate descent's result" in note for note in result["notes"])


def test_a_kernel_compiled_under_another_folder_reads_its_record_from_this_one(
    kernel_sources: list[str], tmp_path: Path
) -> None:
    """Torch looks for a restored kernel's record beside the path it was compiled at; with
    atpack's replay, the record populated into this process's folder answers instead."""
    plain = _run(
        "foreign_path.py", kernel_sources[0], str(tmp_path / "old-a"), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "a")
    )
    assert plain == {"state": "hit", "config": "old"}
    replayed = _run(
        "foreign_path.py",
        kernel_sources[0],
        str(tmp_path / "old-b"),
        "--replay",
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "b"),
    )
    assert replayed == {"state": "hit", "config": "here"}


@pytest.mark.parametrize("torch_names_winners", [True, False], ids=["put_winner", "no-put_winner"])
def test_a_capture_keeps_the_folder_coordinate_descent_chose(
    kernel_sources: list[str], tmp_path: Path, torch_names_winners: bool
) -> None:
    """Torch saves coordinate descent's result without its kernel's folder, and a winner torch
    names may be autotuning's, from before the search: the capture keeps every folder compiled
    for the kernel, whether or not torch names winners, so that a warm start compiles nothing;
    a kernel the compiled code never launches is left out."""
    if torch_names_winners:
        import torch
        from torch._inductor.triton_bundler import TritonBundler

        if not hasattr(TritonBundler, "put_winner"):
            pytest.skip(f"torch {torch.__version__} does not name winners (TritonBundler.put_winner: torch 2.12+)")
    flag = [] if torch_names_winners else ["--no-put-winner"]
    result = _run(
        "capture_searched.py",
        kernel_sources[0],
        str(tmp_path / "p.atpack"),
        *flag,
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "i"),
    )
    candidates = result["candidates"]
    assert result["packed"] == sorted(candidates)
    assert result["unlaunched"] not in result["packed"]
