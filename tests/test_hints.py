"""Hints: results made on another GPU, torch or Triton offered as candidates, never as answers.

``atpack populate PACK --hints`` writes no result made elsewhere; it keeps the recorded winners
in the Inductor folder (``atpack-hints.json``). A process that uses the folder, and never imports
atpack (torch's plug-in reads the file), benchmarks where its own lookup misses only the
candidates of its own list a hint names, plus the first of its list; torch or Triton saves the
winner as its own result under its own key, which the next process hits. Every step a process
of its own, torch's and Triton's default folders (tests/machine.py); torch's and Triton's own
tuning code runs, with a deterministic "measurement" for each launch (no GPU here).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import h100_sample
import pytest
from machine import PROGRAMS, Machine

from atpack import hints
from atpack.errors import FormatError
from atpack.hints import Candidate, Hint, Hints, config_of
from atpack.replay import HINTS_FILE
from atpack.seam import kernel_problem
from atpack.testing.packs import made_elsewhere

ANOTHER_TRITON = "3.1.0"  # a release atpack never ran with: never this machine's
ANOTHER_TORCH = "2.7.0"


# --------------------------------------------------------------------------- problems and matching


def test_a_kernels_problem_is_the_same_on_another_gpu_and_build_and_changes_with_its_code(
    h100_sample_root: Path,
) -> None:
    source = h100_sample.for_this_torch((h100_sample_root / h100_sample.REDUCTION).read_text())
    problem = kernel_problem(source)
    assert problem is not None and problem[1].startswith("reduction {")
    assert "cc=90" in source and "multi_processor_count=132" in source and "'backend_hash': '" in source
    elsewhere = source.replace("cc=90", "cc=80").replace("multi_processor_count=132", "multi_processor_count=108")
    backend = source.split("'backend_hash': '")[1][:64]
    elsewhere = elsewhere.replace(backend, "0" * 64)
    name = source.split("\ndef ")[1].split("(")[0]
    renamed = source.replace(f"def {name}(", "def triton_red_fused_renamed_7(")
    assert kernel_problem(elsewhere) == kernel_problem(renamed) == problem
    edited = source.replace("tl.store(", "tl.store(  ", 1)
    assert edited != source and kernel_problem(edited) != problem
    assert kernel_problem("import triton\n") is None  # no kernel: no problem, no hint


def test_the_nearest_winners_come_first_the_same_gpu_then_its_family_then_any() -> None:
    here = {"compute_capability": "9.0", "torch_version": "2.13.0", "triton_version": "3.9.0"}

    def made(cc: str, torch: str) -> int:
        return hints.distance({"compute_capability": cc, "torch_version": torch, "triton_version": "3.9.0"}, here)

    assert made("9.0", "2.13.0") < made("9.0", "2.12.0") < made("9.1", "2.13.0") < made("8.0", "2.13.0")
    a100, h200, h100_older = (config_of([("XBLOCK", b)], num_warps=4, num_stages=1) for b in (8, 16, 32))
    merged = hints.nearest(
        [
            Hint("autotune", "p", "k", (Candidate(a100, made("8.0", "2.13.0")),)),
            Hint("autotune", "p", "k", (Candidate(h100_older, made("9.0", "2.12.0")),)),
            Hint("autotune", "p", "k", (Candidate(h200, made("9.0", "2.13.0")), Candidate(a100, 0))),
        ]
    )
    assert [c.config for c in merged[0].candidates] == [h200, a100, h100_older]  # each config once, at most 3


def test_a_hint_narrows_only_to_configs_torch_made_here_and_keeps_its_first() -> None:
    made_here = [config_of([("XBLOCK", b)], num_warps=w, num_stages=1) for b, w in ((64, 4), (128, 4), (256, 8))]
    hinted = Hints([Hint("autotune", "p", "k", (Candidate(made_here[2], 0),))])
    assert hinted.narrowed("autotune", "p", made_here) == [0, 2]
    assert hinted.used == {"autotune": 1}
    foreign = Hints([Hint("autotune", "p", "k", (Candidate({"XBLOCK": 4096, "num_warps": 32, "num_stages": 1}, 0),))])
    assert foreign.narrowed("autotune", "p", made_here) is None  # a config torch did not make: no narrowing
    assert hinted.narrowed("autotune", "another problem", made_here) is None
    assert hinted.narrowed("gemm", "p", made_here) is None
    # a release that records an option more (num_ctas at its default) names the same config
    with_ctas = [{**c, "num_ctas": 1} for c in made_here]
    assert hinted.narrowed("autotune", "p", with_ctas) == [0, 2]
    extra_kwarg = Hints([Hint("autotune", "p", "k", (Candidate({**made_here[2], "R0_BLOCK": 8}, 0),))])
    assert extra_kwarg.narrowed("autotune", "p", made_here) is None


def test_a_hints_file_that_is_not_atpacks_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / HINTS_FILE
    path.write_text('{"format": "atpack-hints/1", "hints": [{"cache": "nope"}]}')
    with pytest.raises(FormatError, match=r"atpack-hints\.json: not atpack's hints \(.*'nope'.*hints\[0\]\.cache"):
        hints.read(str(path))
    path.unlink()
    os.mkfifo(path)  # never waited on
    with pytest.raises(FormatError, match="not a regular file"):
        hints.read(str(path))
    assert hints.read(str(tmp_path / "none")) == []


# --------------------------------------------------------------------------- @triton.autotune


@pytest.fixture(scope="module")
def autotuned_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``@triton.autotune`` kernel tuned for two tuning keys (2 x 16 configs benchmarked),
    captured, and the pack as if made under another Triton release."""
    made = Machine(tmp_path_factory.mktemp("autotuned"))
    pack = made.home / "made.atpack"
    made.atpack("capture", "-o", str(pack), "--", sys.executable, str(PROGRAMS / "explain_autotune.py"))
    elsewhere = made.home / "elsewhere.atpack"
    made_elsewhere(str(pack), str(elsewhere), triton_version=ANOTHER_TRITON)
    return elsewhere


def test_autotune_results_of_another_triton_are_hints_benchmarked_and_saved_as_tritons_own(
    autotuned_elsewhere: Path, tmp_path: Path
) -> None:
    fresh = Machine(tmp_path)
    cold = Machine(tmp_path / "cold").run("explain_autotune.py")
    assert cold["bench_calls"] == 32

    report = populated(fresh, autotuned_elsewhere, "--hints", "--explain")
    assert counts(report) == {("triton.autotune/1", "hinted"): 2}
    assert not list(fresh.triton.rglob("*.autotune.json"))  # nothing applied as an exact result
    hinted = fresh.run("explain_autotune.py")
    # per tuning key: Triton's first config and the 3 recorded winners, of its 16
    assert hinted["bench_calls"] == 2 * 4
    explained = json.loads(fresh.atpack("explain", str(autotuned_elsewhere), "--json").stdout)
    assert explained["benchmarks"] == 2 * 4  # what is left out never reaches Triton's benchmark (nor a counter)
    assert (explained["caches"]["triton_autotune"]["hits"], explained["caches"]["triton_autotune"]["misses"]) == (0, 2)
    assert hinted["cache_hits"] == [False, False]
    assert hinted["best"] == cold["best"]  # the winner here is the recorded one (the same measurement)
    saved = [json.loads(p.read_text()) for p in fresh.triton.rglob("*.autotune.json")]
    assert len(saved) == 2  # Triton's own result, under its own key: what was not benchmarked is infinite
    for result in saved:
        timings = [t[0] for _, t in result["configs_timings"]]
        assert len(timings) == 16 and sum(map(math.isfinite, timings)) == 4

    warm = fresh.run("explain_autotune.py")
    assert warm["bench_calls"] == 0 and warm["cache_hits"] == [True, True] and warm["best"] == cold["best"]


def test_the_api_path_hints_the_process_that_loads_the_pack(autotuned_elsewhere: Path, tmp_path: Path) -> None:
    """`atpack.load_cache_artifacts(PACK, hints=True)` in the training process itself (torch's
    plug-ins off: the hints are the API's)."""
    fresh = Machine(tmp_path)
    program = (
        "import runpy, sys, atpack\n"
        f"report = atpack.load_cache_artifacts({str(autotuned_elsewhere)!r}, hints=True)\n"
        "assert report.count('hinted') == 2, report.format()\n"
        "sys.argv = ['explain_autotune.py']\n"
        "runpy.run_path('explain_autotune.py', run_name='__main__')\n"
    )
    result = fresh.process([sys.executable, "-c", program], cwd=PROGRAMS, TORCH_DEVICE_BACKEND_AUTOLOAD="0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["bench_calls"] == 2 * 4


def test_hints_are_off_with_atpack_hints_0_and_without_the_flag(autotuned_elsewhere: Path, tmp_path: Path) -> None:
    off = Machine(tmp_path / "off")
    populated(off, autotuned_elsewhere, "--hints")
    assert off.run("explain_autotune.py", ATPACK_HINTS="0")["bench_calls"] == 32

    plain = Machine(tmp_path / "plain")
    report = populated(plain, autotuned_elsewhere)
    assert counts(report) == {("triton.autotune/1", "skipped"): 2}
    assert not (plain.inductor / HINTS_FILE).exists()
    assert plain.run("explain_autotune.py")["bench_calls"] == 32


def test_a_hints_file_someone_else_wrote_changes_nothing(autotuned_elsewhere: Path, tmp_path: Path) -> None:
    fresh = Machine(tmp_path)
    populated(fresh, autotuned_elsewhere, "--hints")
    (fresh.inductor / HINTS_FILE).write_bytes(b"\x00not json")
    result = fresh.process([sys.executable, str(PROGRAMS / "explain_autotune.py")], cwd=PROGRAMS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["bench_calls"] == 32  # as without atpack
    assert "atpack: no hints in this process" in result.stderr


# --------------------------------------------------------------------------- Inductor's kernels


@pytest.fixture(scope="module")
def kernels(h100_sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The sample's reduction kernel module (6 configs, on torch 2.8: 5) and a pointwise one (2),
    as this torch loads them; both ask for Inductor's coordinate descent, as max-autotune does."""
    return h100_sample.kernel_sources(h100_sample_root, tmp_path_factory.mktemp("kernels"))


@pytest.fixture(scope="module")
def unsearched(kernels: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The same kernels compiled without coordinate descent."""
    folder = tmp_path_factory.mktemp("unsearched")
    paths = []
    for path in map(Path, kernels):
        source = path.read_text()
        assert "'coordinate_descent_tuning': True" in source
        (folder / path.name).write_text(
            source.replace("'coordinate_descent_tuning': True", "'coordinate_descent_tuning': False")
        )
        paths.append(str(folder / path.name))
    return paths


def kernels_elsewhere(kernels: list[str], root: Path) -> Path:
    """A capture of the kernels tuned, as if made under another torch release."""
    made = Machine(root)
    pack, elsewhere = made.home / "made.atpack", made.home / "elsewhere.atpack"
    made.atpack("capture", "-o", str(pack), "--", sys.executable, str(PROGRAMS / "hinted_kernels.py"), *kernels)
    made_elsewhere(str(pack), str(elsewhere), torch_version=ANOTHER_TORCH)
    return elsewhere


def test_kernel_records_of_another_torch_narrow_its_configs_and_torch_saves_the_winner(
    unsearched: list[str], tmp_path: Path
) -> None:
    elsewhere = kernels_elsewhere(unsearched, tmp_path / "made")
    reduction, pointwise = Machine(tmp_path / "cold").run("hinted_kernels.py", *unsearched)
    assert len(reduction["autotuned"]) == len(reduction["offered"]) > 2 and reduction["searched"] == 0
    assert reduction["winner"] != reduction["offered"][0]

    fresh = Machine(tmp_path / "fresh")
    report = populated(fresh, elsewhere, "--hints")
    assert counts(report)["inductor.best_config/1", "hinted"] == 2
    assert not list(fresh.inductor.rglob("*.best_config"))  # nothing applied as an exact result
    hinted_reduction, hinted_pointwise = fresh.run("hinted_kernels.py", *unsearched)
    assert hinted_reduction["state"] == "miss"
    assert hinted_reduction["autotuned"] == [reduction["offered"][0], reduction["winner"]]  # of torch's 5 or 6
    assert hinted_reduction["winner"] == reduction["winner"]
    # the pointwise kernel's winner is torch's first config: nothing to narrow, both benchmarked
    assert hinted_pointwise["autotuned"] == pointwise["autotuned"]

    warm = fresh.run("hinted_kernels.py", *unsearched)
    assert [k["state"] for k in warm] == ["hit", "hit"]  # torch's own .best_config, saved by the hinted run
    assert [k["winner"] for k in warm] == [reduction["winner"], pointwise["winner"]]
    assert all(k["autotuned"] == [] for k in warm)


def test_a_searched_winner_of_another_torch_is_where_the_search_starts(kernels: list[str], tmp_path: Path) -> None:
    elsewhere = kernels_elsewhere(kernels, tmp_path / "made")
    cold = Machine(tmp_path / "cold").run("hinted_kernels.py", *kernels)
    assert [(len(k["autotuned"]) == len(k["offered"]) > 1, k["searched"] > 0) for k in cold] == [(True, True)] * 2

    fresh = Machine(tmp_path / "fresh")
    populated(fresh, elsewhere, "--hints")
    hinted = fresh.run("hinted_kernels.py", *kernels)
    for kernel, before in zip(hinted, cold):
        # no autotuning among torch's configs: the search starts from the recorded winner,
        # benchmarks its neighbours, and finds the same winner here
        assert kernel["state"] == "miss" and kernel["autotuned"] == []
        assert 0 < kernel["searched"] < before["searched"]
        assert kernel["winner"] == before["winner"]
    calls = sum(len(k["autotuned"]) + k["searched"] for k in hinted)
    assert calls <= 0.3 * sum(len(k["autotuned"]) + k["searched"] for k in cold)

    warm = fresh.run("hinted_kernels.py", *kernels)
    assert [(k["state"], k["autotuned"], k["searched"]) for k in warm] == [("hit", [], 0), ("hit", [], 0)]
    assert [k["winner"] for k in warm] == [k["winner"] for k in cold]


def test_a_search_start_outside_the_bounds_of_torchs_search_is_not_taken(kernels: list[str], tmp_path: Path) -> None:
    [cold] = Machine(tmp_path / "cold").run("hinted_kernels.py", kernels[0])
    problem = kernel_problem(Path(kernels[0]).read_text())
    assert problem is not None
    fresh = Machine(tmp_path / "fresh")
    fresh.inductor.mkdir(parents=True)
    too_large = {"XBLOCK": 1 << 16, "R0_BLOCK": 4096, "num_warps": 1, "num_stages": 1}  # a hints file is data
    hint = Hint("autotune", problem[0], "reduction", (Candidate(too_large, 0, "a hostile file", searched=True),))
    (fresh.inductor / HINTS_FILE).write_bytes(hints.encode([hint]))
    [kernel] = fresh.run("hinted_kernels.py", kernels[0])
    assert kernel["searched"] > 0 and kernel["winner"] == cold["winner"]  # torch's own start and search


def test_a_dry_run_says_what_would_be_hinted_and_writes_nothing(autotuned_elsewhere: Path, tmp_path: Path) -> None:
    fresh = Machine(tmp_path)
    out = fresh.atpack("populate", str(autotuned_elsewhere), "--hints", "--dry-run").stdout
    assert "hints: 2 problems would be hinted" in out
    assert "no exact result would apply here" in out
    assert not (fresh.inductor / HINTS_FILE).exists()


# --------------------------------------------------------------------------- max-autotune GEMMs


GEMM = """
import json, sys
import torch
from torch._inductor import config
from torch._inductor.codecache import PersistentCache

class Choice:  # a candidate as PersistentCache keys it (torch's ChoiceCaller.hash_key)
    def __init__(self, name):
        self.name = name
    def hash_key(self):
        return self.name

measured = []
def benchmark(choices):  # a deterministic measurement; the last candidate is the fastest
    measured.extend(c.name for c in choices)
    return {c: 1.0 / (1 + int(c.name[-1])) for c in choices}

choices = [Choice(f"choice-{i}") for i in range(6)]
with config.patch(max_autotune=True):
    timings = PersistentCache().lookup(choices, "mm", "inputs-32x64", benchmark)
print(json.dumps({"measured": measured, "timings": {c.name: t for c, t in timings.items()}}))
"""


def test_gemm_timings_of_another_gpu_narrow_the_choices_benchmarked(tmp_path: Path) -> None:
    made = Machine(tmp_path / "made")
    cold = run_source(made, GEMM)
    assert cold["measured"] == [f"choice-{i}" for i in range(6)]
    pack, elsewhere = made.home / "made.atpack", made.home / "elsewhere.atpack"
    made.atpack("pack", "-o", str(pack))
    made_elsewhere(str(pack), str(elsewhere), triton_version=ANOTHER_TRITON)

    fresh = Machine(tmp_path / "fresh")
    report = populated(fresh, elsewhere, "--hints")
    assert counts(report) == {("inductor.gemm_timings/1", "hinted"): 1}
    hinted = run_source(fresh, GEMM)
    # torch's first choice and the 3 fastest recorded, of its 6; the others timed as failed ones
    assert hinted["measured"] == ["choice-0", "choice-3", "choice-4", "choice-5"]
    assert {c: t for c, t in hinted["timings"].items() if math.isfinite(t)} == {
        c: cold["timings"][c] for c in hinted["measured"]
    }
    warm = run_source(fresh, GEMM)
    assert warm["measured"] == [] and warm["timings"] == hinted["timings"]


# --------------------------------------------------------------------------- helpers


def populated(machine: Machine, pack: Path, *flags: str) -> dict[str, Any]:
    """``atpack populate PACK --json`` on `machine`, into torch's default folders."""
    return json.loads(machine.atpack("populate", str(pack), "--json", *flags).stdout)  # type: ignore[no-any-return]


def counts(report: dict[str, Any]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for outcome in report["outcomes"]:
        key = (outcome["kind"], outcome["action"])
        found[key] = found.get(key, 0) + 1
    return found


def run_source(machine: Machine, source: str) -> Any:
    result = machine.process([sys.executable, "-c", source], cwd=machine.home)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
