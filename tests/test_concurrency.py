"""Concurrency: processes that populate the same cache folders, merge GEMM timings into the same
file or save packs into the same folder, all at once, never leave a partial file and never lose
one another's work.

Each test starts 8 spawned processes and runs several rounds; in each round a barrier releases
all of them at the same moment (`atpack.testing.faults.race`; the races are in
`tests/reliability.py`). The figures are printed (`pytest -s`); `tools/bench_reliability.py` runs
more rounds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability import RACE_DIR, RaceResult, Scale, gemm_race, populate_race, save_race

PROCESSES = 8
ROUNDS = 3


@pytest.fixture
def race_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(RACE_DIR, str(tmp_path))  # the spawned processes find their work there
    return tmp_path


def show(result: RaceResult) -> None:
    print(
        f"{result.scenario}: {result.processes} processes x {result.rounds} rounds, {result.files} {result.unit}; "
        f"partial files: {result.partial_files}, missing entries: {result.missing_entries}, "
        f"clobbered packs: {result.clobbered_packs}, failed reports: {result.failed_reports}, "
        f"temporary files left: {result.temporaries_left}, redundant writes: {result.redundant_writes}, "
        f"{result.seconds:.1f} s"
    )


def test_eight_processes_populating_the_same_folders_at_once_end_with_whole_files_and_every_entry(
    race_dir: Path,
) -> None:
    result = populate_race(race_dir, PROCESSES, ROUNDS, Scale(configs=40, perfs=8, autotunes=8, kernels=12))
    show(result)
    assert result.files > 100 and result.artifacts > 60
    assert result.differing_rounds == result.partial_files == result.missing_entries == 0
    assert result.failed_reports == result.temporaries_left == 0
    assert result.redundant_writes > 0  # the processes did race for the same files


def test_gemm_timings_merged_by_eight_processes_at_once_lose_no_entry(race_dir: Path) -> None:
    result = gemm_race(race_dir, PROCESSES, ROUNDS, per_pack=25)
    show(result)
    assert result.files == PROCESSES * 25 + 1  # every process's timings and the file's own
    assert result.missing_entries == result.failed_reports == result.temporaries_left == 0


def test_eight_processes_saving_packs_into_one_folder_do_not_clobber_each_other(race_dir: Path) -> None:
    result = save_race(race_dir, PROCESSES, ROUNDS)
    show(result)
    assert result.files == PROCESSES + 1  # pack-0 .. pack-7 and the shared name, nothing else
    assert result.clobbered_packs == result.missing_entries == result.temporaries_left == 0
