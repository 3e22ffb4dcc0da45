"""The reliability scenarios of `test_crash.py` and `test_concurrency.py`, which
`tools/bench_reliability.py` runs at a larger scale (through `tests/programs/crash.py` and
`tests/programs/race.py`).

* a scenario: a pack with every kind populate writes as files (``.best_config``,
  ``.kernel_perf``, a GEMM timing file merged into an existing one, ``@triton.autotune``
  results, kernel folders with blobs in shared and in their own frames), and the state of the
  cache folders before populate (an existing GEMM timing file, an unrelated file);
* kill loops: populate or a pack write killed with SIGKILL at a chosen write, or after a random
  delay, each time from a fresh copy of the start state, then run again to completion, and
  what they saw (`CrashResult`);
* races: N spawned processes populating, merging or saving into the same folders, released
  together by a barrier, for several rounds, and what they saw (`RaceResult`).

The tools they are made of (kill points, tripwires, listings of folders and the checks run on
them after a crash, `race`) are `atpack.testing.faults`. Plain functions, no fixtures. The kill
loops fork, so they run in a fresh interpreter (`tests/programs/crash.py`), never inside pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import atpack
from atpack.adapters import inductor
from atpack.artifacts import ChoiceTiming, GemmEntry, GemmSystem, InductorGemmTimings
from atpack.pack import PackWriter
from atpack.populate import populate
from atpack.testing.faults import (
    TEMP_PREFIX,
    Damage,
    Entry,
    Kill,
    count_calls,
    even_points,
    inspect_crash,
    is_temporary,
    kill_after,
    kill_at,
    listing,
    race,
    restore,
    run_forked,
    visible,
)
from atpack.testing.packs import (
    INDUCTOR_ENV,
    TRITON_ENV,
    alnum,
    best_config,
    hex64,
    kernel_perf,
    triton_autotune,
    triton_kernel,
)

# --------------------------------------------------------------------------- the scenario


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big the scenario pack is."""

    configs: int = 12
    perfs: int = 4
    autotunes: int = 3
    kernels: int = 6
    files_per_kernel: int = 4
    big_every: int = 3  # every n-th kernel has a blob larger than the group size (a frame of its own)
    group_size: int = 64 << 10


GEMM_HASH = hex64("reliability-system")


def gemm(env: str, choices: Sequence[str], *, op: str = "mm", ms: float = 0.5) -> InductorGemmTimings:
    """A GEMM timing artifact for the scenario's system hash with one timing per choice."""
    return InductorGemmTimings(
        env=env,
        system=GemmSystem(hash=GEMM_HASH, device_name="NVIDIA H100 80GB HBM3", triton="3.4.0"),
        entries=(
            GemmEntry(
                op=op,
                inputs="[[64, 64], [64, 64]]",
                precision="high",
                timings=tuple(ChoiceTiming(c, ms + i / 1000) for i, c in enumerate(choices)),
            ),
        ),
    )


def scenario_artifacts(scale: Scale, *, seed: int = 0) -> tuple[list[atpack.Artifact], list[tuple[bytes, str]]]:
    """The artifacts of the scenario pack and the blobs they reference (data, hint)."""
    rng = random.Random(seed)
    ind, tri = INDUCTOR_ENV.digest, TRITON_ENV.digest
    artifacts: list[atpack.Artifact] = [best_config(ind, n) for n in range(scale.configs)]
    artifacts += [kernel_perf(ind, n) for n in range(scale.perfs)]
    artifacts += [triton_autotune(tri, n) for n in range(scale.autotunes)]
    artifacts.append(gemm(tri, [f"triton_mm_{i}" for i in range(8)]))
    blobs: list[tuple[bytes, str]] = []
    for k in range(scale.kernels):
        files = []
        for f in range(scale.files_per_kernel):
            suffix = [".json", ".cubin", ".ptx", ".ttir", ".llir", ".ttgir"][f % 6]
            size = rng.randint(2_000, 20_000)
            if f == 1 and k % scale.big_every == 0:
                size = scale.group_size + rng.randint(1, 5_000)  # a frame of its own
            words = [alnum(f"{k}-{f}-{i}", rng.randint(3, 12)) for i in range(64)]
            data = " ".join(rng.choice(words) for _ in range(size // 6)).encode()[:size]
            if suffix == ".json":  # the kernel's metadata, which names it
                data = b'{"name": "kernel_%d", "pad": "%s"}' % (k, data)
            files.append((f"kernel_{k}{suffix}", data))
            blobs.append((data, suffix))
        artifacts.append(triton_kernel(tri, k, files))
    return artifacts, blobs


def write_scenario_pack(path: str | Path, scale: Scale, *, seed: int = 0) -> atpack.PackInfo:
    artifacts, blobs = scenario_artifacts(scale, seed=seed)
    with atpack.create(path, group_size=scale.group_size) as w:
        _fill(w, artifacts, blobs)
    assert w.info is not None
    return w.info


def scenario_pack_bytes(scale: Scale, *, seed: int = 0) -> bytes:
    artifacts, blobs = scenario_artifacts(scale, seed=seed)
    out = io.BytesIO()
    writer = PackWriter(out, group_size=scale.group_size)
    _fill(writer, artifacts, blobs)
    writer.finish()
    return out.getvalue()


def _fill(writer: PackWriter, artifacts: Sequence[atpack.Artifact], blobs: Sequence[tuple[bytes, str]]) -> None:
    writer.add_environment(INDUCTOR_ENV)
    writer.add_environment(TRITON_ENV)
    for data, hint in blobs:
        writer.add_blob(data, hint=hint)
    for a in artifacts:
        writer.add(a)


def start_state(caches: str | Path) -> None:
    """What the cache folders hold before populate: a GEMM timing file with a timing the pack
    lacks (populate merges into it) and a file of someone else's."""
    caches = Path(caches)
    existing = gemm(TRITON_ENV.digest, ["extern_mm"], op="addmm")
    target = caches / "inductor" / "cache" / GEMM_HASH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(inductor.render_gemm_timings(existing.system, inductor._nested(existing)))
    (caches / "inductor" / "zz").mkdir(parents=True, exist_ok=True)
    (caches / "inductor" / "zz" / "unrelated.py").write_text("print('not atpack's')\n")
    (caches / "triton").mkdir(parents=True, exist_ok=True)


def populate_into(pack: str | Path, caches: str | Path) -> atpack.PopulateReport:
    caches = str(caches)
    return populate(
        str(pack), inductor_dir=f"{caches}/inductor", triton_dir=f"{caches}/triton", ignore_environment=True
    )


# --------------------------------------------------------------------------- kill loops


@dataclasses.dataclass
class CrashResult:
    """What a kill loop saw, summed over its kill points."""

    scenario: str
    kill_points: int = 0  # runs killed (or meant to be killed) at a chosen point
    killed: int = 0  # of them, runs that died of SIGKILL before finishing
    interrupted: int = 0  # of them, runs killed with their work visibly half done
    calls: int = 0  # file-changing calls of one full run (open, mkdir, write, rename, fsync)
    files: int = 0  # files a full run writes
    partial_files: int = 0  # visible files neither as before nor as expected (must be 0)
    foreign_files: int = 0  # visible names populate never writes (must be 0)
    orphan_groups: int = 0  # Triton group files naming a missing or unfinished file (must be 0)
    odd_temporaries: int = 0  # temporary names that are not plain files (must be 0)
    partial_packs: int = 0  # a pack URL holding anything but the old or the new pack (must be 0)
    incomplete_after_rerun: int = 0  # reruns that did not end with every file right (must be 0)
    temporaries_left: int = 0  # hidden temporary files the killed runs left behind (harmless)
    seconds: float = 0.0
    examples: list[str] = dataclasses.field(default_factory=list)

    def add(self, damage: Damage) -> None:
        self.partial_files += len(damage.partial)
        self.foreign_files += len(damage.foreign)
        self.orphan_groups += len(damage.orphan_groups)
        self.odd_temporaries += len(damage.odd_temporaries)
        for what in (damage.partial, damage.foreign, damage.orphan_groups, damage.odd_temporaries):
            self.examples += what[: max(0, 5 - len(self.examples))]

    @property
    def failures(self) -> int:
        return (
            self.partial_files
            + self.foreign_files
            + self.orphan_groups
            + self.odd_temporaries
            + self.partial_packs
            + self.incomplete_after_rerun
        )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "failures": self.failures}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrashResult:
        return cls(**{k: v for k, v in data.items() if k != "failures"})


def populate_kills(
    pack: Path, caches: Path, kills: Callable[[int, float], Iterator[Kill]], scenario: str
) -> CrashResult:
    """The kill loop of populate. One full run (in a child) measures the run: its file-changing
    calls and its duration, from which `kills(calls, seconds)` makes the kill points. Then for
    each: the start state, a killed run, a look at the folders, a full run, a look again."""
    result = CrashResult(scenario)
    begin = time.perf_counter()
    before = _start(caches)
    work = lambda: populate_into(pack, caches)  # noqa: E731
    result.calls = count_calls(work)
    after = listing(caches)
    assert not any(is_temporary(rel) for rel in after)
    result.files = sum(1 for rel, e in after.items() if e[0] == "file" and before.get(rel) != e)
    restore(caches, before)
    seconds = run_forked(work)
    for kill in kills(result.calls, seconds):
        restore(caches, before)
        result.killed += kill(work)
        result.kill_points += 1
        state = listing(caches)
        result.add(inspect_crash(state, before, after, str(caches)))
        shown = visible(state)
        result.temporaries_left += len(state) - len(shown)
        result.interrupted += shown != before and shown != after
        report = work()
        if not report.ok or visible(listing(caches)) != after:
            result.incomplete_after_rerun += 1
            if len(result.examples) < 10:
                result.examples.append(f"rerun after kill #{result.kill_points}: {report.format().splitlines()[-1]}")
    result.seconds = time.perf_counter() - begin
    return result


def _start(caches: Path) -> dict[str, Entry]:
    if caches.exists():
        shutil.rmtree(caches)
    start_state(caches)
    return listing(caches)


def populate_kill_points(pack: Path, caches: Path, count: int | None = None) -> CrashResult:
    """Kill populate at each of its file-changing calls (`count` of them, spread evenly, or all)."""

    def kills(calls: int, seconds: float) -> Iterator[Kill]:
        for n in even_points(calls, count or calls):
            yield lambda work, n=n: kill_at(work, n)

    return populate_kills(pack, caches, kills, "populate, killed at its n-th file-changing call")


def populate_random_kills(pack: Path, caches: Path, trials: int, *, seed: int = 0) -> CrashResult:
    """Kill populate from outside after a random delay, uniform over the time a full run takes."""
    rng = random.Random(seed)

    def kills(calls: int, seconds: float) -> Iterator[Kill]:
        for _ in range(trials):
            delay = rng.uniform(0, seconds)
            yield lambda work, d=delay: kill_after(work, d)

    return populate_kills(pack, caches, kills, "populate, killed by its parent after a random delay")


def create_kill_points(folder: Path, scale: Scale, count: int | None = None) -> CrashResult:
    """Kill `atpack.create` at each of its file-changing calls (`count` of them, spread evenly,
    or all); every other run replaces an older pack at the URL, the others write a new one. The
    URL must hold the old pack (or nothing) or the whole new one, nothing else may appear
    but hidden temporary files, and the next run must publish the new pack."""
    result = CrashResult("atpack.create, killed at its n-th file-changing call")
    url = folder / "model.atpack"
    old = scenario_pack_bytes(Scale(configs=2, perfs=0, autotunes=0, kernels=1), seed=99)
    new = scenario_pack_bytes(scale, seed=1)

    def write() -> None:
        write_scenario_pack(url, scale, seed=1)

    begin = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    result.calls = count_calls(write)
    result.files = 1
    assert url.read_bytes() == new
    for n in even_points(result.calls, count or result.calls):
        shutil.rmtree(folder)
        folder.mkdir()
        previous = old if n % 2 else None
        if previous is not None:
            url.write_bytes(previous)
        result.killed += kill_at(write, n)
        result.kill_points += 1
        names = set(os.listdir(folder))
        hidden = {name for name in names if name.startswith(".model.atpack.") and name.endswith(".tmp")}
        result.temporaries_left += len(hidden)
        result.foreign_files += len(names - hidden - {"model.atpack"})
        at_url = url.read_bytes() if url.exists() else None
        if at_url not in (previous, new):
            result.partial_packs += 1
            result.examples.append(f"kill point {n}: {len(at_url or b'')} bytes at the URL")
        result.interrupted += at_url == previous
        write()
        with atpack.open(url) as pack:
            pack.verify()
        if url.read_bytes() != new:
            result.incomplete_after_rerun += 1
    result.seconds = time.perf_counter() - begin
    return result


# --------------------------------------------------------------------------- race work
# work functions for `race` (module level, so spawned processes can import them)

RACE_DIR = "ATPACK_RACE_DIR"
"""The environment variable naming the folder a race works in."""


def populate_same_pack(index: int, round_: int) -> dict[str, int]:
    """Populate the race folder's ``scenario.atpack`` into its ``caches``; the actions taken."""
    base = Path(os.environ[RACE_DIR])
    report = populate_into(base / "scenario.atpack", base / "caches")
    return {a: report.count(a) for a in ("written", "present", "merged", "kept", "failed")}


def gemm_choices(index: int, round_: int, per_pack: int) -> list[str]:
    return [f"round{round_}-proc{index}-choice{c}" for c in range(per_pack)]


def merge_own_gemm_pack(index: int, round_: int) -> dict[str, int]:
    """Populate this process's GEMM timing pack (its own timings, the shared system hash)."""
    base = Path(os.environ[RACE_DIR])
    report = populate_into(base / f"gemm-{round_}-{index}.atpack", base / "caches")
    return {a: report.count(a) for a in ("written", "present", "merged", "kept", "failed")}


def merge_own_gemm_pack_without_the_lock(index: int, round_: int) -> dict[str, int]:
    """The negative control: the same merge with `CacheDir.locked` doing nothing."""
    from atpack.files import CacheDir

    CacheDir.locked = lambda self, relative: contextlib.nullcontext()  # type: ignore[assignment,method-assign,misc]
    return merge_own_gemm_pack(index, round_)


def write_gemm_pack(path: Path, choices: Sequence[str]) -> None:
    with atpack.create(path) as w:
        w.add_environment(TRITON_ENV)
        w.add(gemm(TRITON_ENV.digest, choices))


def _save_scale(index: int) -> Scale:
    return Scale(configs=3 + index, perfs=1, autotunes=1, kernels=2)


def save_packs(index: int, round_: int) -> str:
    """Save this process's pack under its own name, then under the shared name; its digest."""
    base = Path(os.environ[RACE_DIR]) / "packs"
    info = write_scenario_pack(base / f"pack-{index}.atpack", _save_scale(index), seed=round_ * 100 + index)
    write_scenario_pack(base / "shared.atpack", _save_scale(index), seed=round_ * 100 + index)
    return info.digest


def expected_save(index: int, round_: int) -> bytes:
    """The bytes `save_packs(index, round_)` writes."""
    return scenario_pack_bytes(_save_scale(index), seed=round_ * 100 + index)


def gemm_timings_in(path: Path) -> set[tuple[str, str, str, str]]:
    """Every (op, inputs, precision, choice) of a GEMM timing file."""
    data = json.loads(path.read_bytes())
    return {
        (op, inputs, precision, choice)
        for op, by_inputs in data["cache"].items()
        for inputs, by_precision in by_inputs.items()
        for precision, choices in by_precision.items()
        for choice in choices
    }


# --------------------------------------------------------------------------- the races


@dataclasses.dataclass
class RaceResult:
    """What a race saw, summed over its rounds."""

    scenario: str
    processes: int
    rounds: int
    artifacts: int = 0  # per process and round
    files: int = 0  # what the folders hold at the end of a round, in `unit`s
    unit: str = "files"
    differing_rounds: int = 0  # rounds whose folders differ from one process's populate (must be 0)
    partial_files: int = 0  # files neither absent nor whole (must be 0)
    missing_entries: int = 0  # files, timings or packs one of the processes wrote that are not there (must be 0)
    failed_reports: int = 0  # populate reports with a failed or kept artifact (must be 0)
    temporaries_left: int = 0  # temporary files left when every process finished (must be 0)
    clobbered_packs: int = 0  # packs that are not what their writer wrote (must be 0)
    redundant_writes: int = 0  # artifacts written by more than one process in a round (a sign the race ran)
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return (
            self.differing_rounds
            + self.partial_files
            + self.missing_entries
            + self.failed_reports
            + self.temporaries_left
            + self.clobbered_packs
        )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "failures": self.failures}


def _fresh_caches(base: Path) -> Path:
    caches = base / "caches"
    if caches.exists():
        shutil.rmtree(caches)
    start_state(caches)
    return caches


def populate_race(base: Path, processes: int, rounds: int, scale: Scale) -> RaceResult:
    """`processes` processes populate one pack into the same folders at once, `rounds` times.
    `base` must be ``$ATPACK_RACE_DIR`` of the spawned processes."""
    result = RaceResult("populate one pack into the same folders", processes, rounds)
    begin = time.perf_counter()
    write_scenario_pack(base / "scenario.atpack", scale)
    alone = populate_into(base / "scenario.atpack", _fresh_caches(base))  # one process: the reference
    reference = listing(base / "caches")
    result.artifacts = len(alone.outcomes)
    result.files = sum(1 for kind, _ in reference.values() if kind == "file")

    def check(round_: int, actions: list[dict[str, int]]) -> None:
        state = listing(base / "caches")
        result.temporaries_left += len(state) - len(visible(state))
        shown = visible(state)
        result.differing_rounds += shown != reference
        result.partial_files += sum(1 for rel, e in shown.items() if rel in reference and e != reference[rel])
        result.missing_entries += sum(1 for rel in reference if rel not in shown)
        for a in actions:
            result.failed_reports += a["failed"] + a["kept"] > 0
            result.failed_reports += a["written"] + a["present"] + a["merged"] != result.artifacts
        result.redundant_writes += sum(a["written"] for a in actions) - alone.count("written")

    race(populate_same_pack, processes, rounds, before_round=lambda r: _fresh_caches(base), after_round=check)
    result.seconds = time.perf_counter() - begin
    return result


def gemm_race(base: Path, processes: int, rounds: int, per_pack: int, *, lock: bool = True) -> RaceResult:
    """`processes` processes each merge a pack of `per_pack` timings of their own into one GEMM
    timing file (which holds a timing of its own) at once, `rounds` times. Without `lock` (the
    negative control) they merge without the lock."""
    what = "merge disjoint GEMM timings into one file" + ("" if lock else ", WITHOUT the lock (control)")
    result = RaceResult(what, processes, rounds, artifacts=1, unit="timings")
    begin = time.perf_counter()
    existing: set[tuple[str, str, str, str]] = set()
    timing_file = base / "caches" / "inductor" / "cache" / GEMM_HASH

    def prepare(round_: int) -> None:
        nonlocal existing
        _fresh_caches(base)
        existing = gemm_timings_in(timing_file)
        for i in range(processes):
            write_gemm_pack(base / f"gemm-{round_}-{i}.atpack", gemm_choices(i, round_, per_pack))

    def check(round_: int, actions: list[dict[str, int]]) -> None:
        merged = {t[3] for t in gemm_timings_in(timing_file)}
        wanted = {c for i in range(processes) for c in gemm_choices(i, round_, per_pack)} | {t[3] for t in existing}
        result.missing_entries += len(wanted - merged)
        result.files = len(merged)
        result.failed_reports += sum(a["failed"] + a["kept"] > 0 for a in actions)
        result.temporaries_left += sum(1 for _ in (base / "caches").rglob(TEMP_PREFIX + "*"))

    work = merge_own_gemm_pack if lock else merge_own_gemm_pack_without_the_lock
    race(work, processes, rounds, before_round=prepare, after_round=check)
    result.seconds = time.perf_counter() - begin
    return result


def save_race(base: Path, processes: int, rounds: int) -> RaceResult:
    """`processes` processes each save a pack of their own into one local folder, then all save
    to one shared name, at once, `rounds` times."""
    result = RaceResult("save packs into one folder (own names, then one shared name)", processes, rounds, unit="packs")
    begin = time.perf_counter()
    folder = base / "packs"

    def prepare(round_: int) -> None:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()

    def check(round_: int, digests: list[str]) -> None:
        expected = [expected_save(i, round_) for i in range(processes)]
        for i, digest in enumerate(digests):
            path = folder / f"pack-{i}.atpack"
            if not path.exists():
                result.missing_entries += 1
                continue
            with atpack.open(path) as pack:
                pack.verify()
                result.clobbered_packs += path.read_bytes() != expected[i] or pack.digest != digest
        result.clobbered_packs += (folder / "shared.atpack").read_bytes() not in expected
        names = {p.name for p in folder.iterdir()}
        result.temporaries_left += len(names - {f"pack-{i}.atpack" for i in range(processes)} - {"shared.atpack"})
        result.files = len(names)

    race(save_packs, processes, rounds, before_round=prepare, after_round=check)
    result.seconds = time.perf_counter() - begin
    return result
