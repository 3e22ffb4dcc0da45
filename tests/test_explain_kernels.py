"""`atpack explain` on the lookups torch and Triton really make: Inductor's `.best_config`
records (cache "autotune"), ``@triton.autotune`` results (cache "triton_autotune") and Triton's
compiled kernels (cache "triton_kernel").

Every step is a process of its own, as on a container: a run captured into a pack, `atpack
populate` into fresh folders, a run that records its lookups (``ATPACK_EXPLAIN=1``, or the marker
``populate --explain`` writes), then ``atpack explain PACK --json``. Torch's and Triton's own read
paths run on this CPU with a stand-in CUDA driver (tests/programs/standin.py); Triton compiles
for an H100 target with the LLVM and ptxas of its wheel. Nothing of atpack is stubbed.

What a miss is explained by (`atpack.explaining`), as these runs show it:

* the same key made of other components: the pack holds the key, the cause names the components
  (an Inductor kernel module whose candidate list changed: its record's path stays the same);
* a key the pack does not hold: the nearest recorded key of the same kernel and the components
  that differ (an edited kernel: "source"; another configs list: "configs"; another value of
  a ``@triton.autotune`` tuning key: "tuning_key").
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h100_sample
import pytest

from atpack.artifacts import LookupKey
from atpack.lookups import RECORDS, record_files
from atpack.pack import open_pack

PROGRAMS = Path(__file__).parent / "programs"
pytestmark = pytest.mark.slow

AUTOTUNE_HITS = "the pack holds this key, made of other components: "
NEAREST = "no entry for this key; the nearest of "


# --------------------------------------------------------------------------- the steps


@dataclasses.dataclass(frozen=True)
class Machine:
    """The cache folders of one container: Inductor's and Triton's."""

    root: Path

    @property
    def inductor(self) -> Path:
        return self.root / "inductor"

    @property
    def triton(self) -> Path:
        return self.root / "triton"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process here: no ATPACK_* setting of the caller's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATPACK_")}
        return {**env, "TORCHINDUCTOR_CACHE_DIR": str(self.inductor), "TRITON_CACHE_DIR": str(self.triton), **extra}

    def run(self, program: str, *args: str, **extra: str) -> Any:
        """Run one of tests/programs here; its last line of output, as JSON."""
        result = _process([sys.executable, str(PROGRAMS / program), *args], self.env(**extra))
        return json.loads(result.stdout.strip().splitlines()[-1])

    def recorded(self, program: str, *args: str, **extra: str) -> tuple[Any, list[str]]:
        """Run a program here; what it printed, and the lookup records the run left."""
        before = set(record_files(str(self.inductor)))
        output = self.run(program, *args, **extra)
        return output, [p for p in record_files(str(self.inductor)) if p not in before]

    def atpack(self, *args: str) -> str:
        """The atpack command here (its output)."""
        return _process([sys.executable, "-m", "atpack", *args], self.env()).stdout

    def populate(self, pack: Path, *flags: str) -> str:
        return self.atpack(
            "populate", str(pack), "--inductor-dir", str(self.inductor), "--triton-dir", str(self.triton), *flags
        )

    def explain(self, pack: Path, records: list[str]) -> dict[str, Any]:
        """``atpack explain PACK --json`` of these records."""
        assert records, "the run recorded nothing"
        out = self.atpack("explain", str(pack), "--inductor-dir", str(self.inductor), "--records", *records, "--json")
        return json.loads(out)  # type: ignore[no-any-return]


def _process(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROGRAMS, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def lookup_keys(pack: Path, cache: str) -> dict[str, LookupKey]:
    """The keys of `cache` a pack holds the components of (its ``lookup.key/1`` artifacts), by key."""
    with open_pack(pack) as opened:
        return {a.lookup: a for a in opened.artifacts if isinstance(a, LookupKey) and a.cache == cache}


def counts(explained: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(hits, misses) per cache looked up."""
    return {cache: (c["hits"], c["misses"]) for cache, c in explained["caches"].items()}


def differing(miss: dict[str, Any]) -> list[str]:
    """The components a miss's explanation names."""
    return [d["component"] for d in miss["differs"]]


def files_under(folder: Path, suffix: str) -> set[str]:
    """Paths (relative, without `suffix`) of the files under `folder` whose name ends with it."""
    return {str(p.relative_to(folder))[: -len(suffix)] for p in folder.rglob(f"*{suffix}")}


# --------------------------------------------------------------------------- Inductor's .best_config


@pytest.fixture(scope="module")
def kernels(h100_sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The sample's reduction kernel module and a pointwise one, as this torch loads them."""
    return h100_sample.kernel_sources(h100_sample_root, tmp_path_factory.mktemp("kernels"))


@pytest.fixture(scope="module")
def tuned(kernels: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack captured from a run that tuned both kernels (each a miss, then a `.best_config` saved)."""
    made = Machine(tmp_path_factory.mktemp("made"))
    pack = made.root / "tuned.atpack"
    states = made.run("inductor_kernel.py", "tune", *kernels, ATPACK_CAPTURE_TO=str(pack))
    assert [k["autotune_cache_state"] for k in states] == ["miss", "miss"]
    return pack


def test_a_populated_best_config_is_read_as_a_hit_and_explain_counts_every_lookup_a_hit(
    kernels: list[str], tuned: Path, tmp_path: Path
) -> None:
    fresh = Machine(tmp_path)
    fresh.populate(tuned)
    states, records = fresh.recorded("inductor_kernel.py", "read", *kernels, ATPACK_EXPLAIN="1")
    assert [k["autotune_cache_state"] for k in states] == ["hit", "hit"]

    explained = fresh.explain(tuned, records)
    assert counts(explained) == {"autotune": (2, 0)}
    assert explained["caches"]["autotune"]["hit_rate"] == 1.0
    assert explained["misses"] == [] and explained["benchmarks"] == 0
    # the keys looked up are the records populate wrote, and the ones the capture recorded
    written = {key + ".best_config" for key in files_under(fresh.inductor, ".best_config")}
    assert set(lookup_keys(tuned, "autotune")) == written and len(written) == 2


def test_another_candidate_list_for_the_same_kernel_module_misses_on_its_configs(
    kernels: list[str], tuned: Path, tmp_path: Path
) -> None:
    """Torch keys a `.best_config` by the kernel module's file name (a hash of its source), the
    cache_key_tag and torch's build, and checks the candidates' hash only once it has read the
    file. A kernel handed other candidates by the same module (Inductor rechecks the cache with
    the configs it compiled, `recheck_autotune_cache`, after an FX graph cache hit; torch 2.6 and
    2.7 leave torch's build out of the path) reads the same path and misses: here torch's
    heuristics hand the kernel one candidate fewer (tests/programs/explain_inductor.py)."""
    fresh = Machine(tmp_path)
    fresh.populate(tuned)
    states, records = fresh.recorded("explain_inductor.py", *kernels, "--fewer-configs", ATPACK_EXPLAIN="1")
    assert [k["autotune_cache_state"] for k in states] == ["miss", "miss"]

    explained = fresh.explain(tuned, records)
    assert counts(explained) == {"autotune": (0, 2)}
    recorded = lookup_keys(tuned, "autotune")
    for miss in explained["misses"]:
        assert miss["key"] in recorded  # the very path the pack holds
        assert miss["cause"] == AUTOTUNE_HITS + "configs"
        assert miss["nearest"] == miss["key"]
        [configs] = miss["differs"]
        assert configs["component"] == "configs"
        n_recorded, n_found = (int(configs[side].split()[0]) for side in ("recorded", "found"))
        assert n_found == n_recorded - 1


def test_an_edited_kernel_module_is_another_path_and_misses_on_its_source(
    kernels: list[str], tuned: Path, tmp_path: Path
) -> None:
    """Editing a kernel module (its candidate list included) makes another module file, so
    another `.best_config` path: the pack holds no entry for it, and the nearest it holds, the
    same kernel's, differs in the module ("source")."""
    reduction = Path(kernels[0])
    edited = tmp_path / "edited.py"
    edited.write_text(reduction.read_text() + "# edited\n")
    fresh = Machine(tmp_path / "machine")
    fresh.populate(tuned)
    [state], records = fresh.recorded("explain_inductor.py", str(edited), ATPACK_EXPLAIN="1")
    assert state["autotune_cache_state"] == "miss"

    explained = fresh.explain(tuned, records)
    assert counts(explained) == {"autotune": (0, 1)}
    [miss] = explained["misses"]
    recorded = lookup_keys(tuned, "autotune")
    assert miss["key"] not in recorded
    original = next(k for k in recorded.values() if k.name == miss["name"])
    assert miss["name"].startswith("triton_red_")  # Inductor's name of the kernel: the same after the edit
    assert miss["cause"] == f"{NEAREST}{miss['name']} in the pack differs in source"
    assert miss["nearest"] == original.lookup
    assert differing(miss) == ["source"]
    assert miss["differs"][0]["found"] == os.path.basename(state["module"])  # the module file the process loaded


# --------------------------------------------------------------------------- @triton.autotune


@pytest.fixture(scope="module")
def autotuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Machine]:
    """A pack captured by ``atpack capture --`` from a run that tuned a ``@triton.autotune``
    kernel for two tuning keys (both misses: 2 x 16 benchmarks), and the folders it ran in."""
    made = Machine(tmp_path_factory.mktemp("autotuned"))
    pack = made.root / "autotuned.atpack"
    made.atpack("capture", "-o", str(pack), "--", sys.executable, str(PROGRAMS / "explain_autotune.py"))
    return pack, made


def test_populated_autotune_results_are_hits_under_the_keys_triton_wrote(
    autotuned: tuple[Path, Machine], tmp_path: Path
) -> None:
    pack, made = autotuned
    fresh = Machine(tmp_path)
    fresh.populate(pack, "--explain")
    assert (fresh.inductor / "atpack-explain.json").is_file()
    warm, records = fresh.recorded("explain_autotune.py")  # no ATPACK_EXPLAIN: the marker asks
    assert warm["bench_calls"] == 0 and warm["cache_hits"] == [True, True]

    explained = fresh.explain(pack, records)
    assert counts(explained) == {"triton_autotune": (2, 0)}
    assert explained["caches"]["triton_autotune"]["hit_rate"] == 1.0
    assert explained["benchmarks"] == 0
    # atpack's key, recomputed from Triton's formula, is the folder and file Triton wrote
    # (<folder>/<fn name>.autotune.json): in the captured run and where the warm one read it
    wrote = files_under(made.triton, ".autotune.json")
    assert len(wrote) == 2
    assert set(lookup_keys(pack, "triton_autotune")) == wrote
    assert files_under(fresh.triton, ".autotune.json") == wrote
    [record] = records
    looked_up = [json.loads(line) for line in Path(record).read_text().splitlines()]
    assert {e["key"] for e in looked_up if e["type"] == "lookup"} == wrote


@pytest.mark.parametrize(
    ("args", "component", "misses", "benchmarks"),
    [
        (["--fewer-configs"], "configs", 2, 2 * 8),
        (["--edited"], "source", 2, 2 * 16),
        # a tuning key the captured run never met: a lookup of its own, which no pack of that run
        # holds; the nearest entry, the same kernel's for another key, differs in the key alone
        (["--n", "1024"], "tuning_key", 1, 16),
    ],
    ids=["another-configs-list", "edited-source", "another-tuning-key"],
)
def test_an_autotune_miss_names_the_component_that_changed(
    autotuned: tuple[Path, Machine], tmp_path: Path, args: list[str], component: str, misses: int, benchmarks: int
) -> None:
    pack, _ = autotuned
    fresh = Machine(tmp_path)
    fresh.populate(pack, "--explain")
    output, records = fresh.recorded("explain_autotune.py", *args)
    assert output["cache_hits"] == [False] * misses and output["bench_calls"] == benchmarks

    explained = fresh.explain(pack, records)
    assert counts(explained) == {"triton_autotune": (0, misses)}
    assert explained["benchmarks"] == benchmarks  # each candidate timed, counted at Triton's autotuner
    recorded = lookup_keys(pack, "triton_autotune")
    for miss in explained["misses"]:
        assert miss["key"] not in recorded and miss["name"] == "scale_add"
        assert miss["cause"] == f"{NEAREST}scale_add in the pack differs in {component}"
        assert miss["nearest"] in recorded
        assert differing(miss) == [component]
        assert miss["key"] in files_under(fresh.triton, ".autotune.json")  # the miss's own result, saved


# --------------------------------------------------------------------------- Triton's compiled kernels


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A pack captured (`atpack.capture()`) from a run that compiled a Triton kernel for an H100."""
    made = Machine(tmp_path_factory.mktemp("compiled"))
    pack = made.root / "compiled.atpack"
    cold = made.run("explain_compile.py", ATPACK_CAPTURE_TO=str(pack))
    assert cold["cache_hits"] == [False]
    assert (made.triton / cold["folder"] / "add_one.cubin").is_file()  # ptxas ran
    return pack, cold


def test_a_populated_compiled_kernel_is_a_hit_under_its_folder(compiled: tuple[Path, Any], tmp_path: Path) -> None:
    pack, cold = compiled
    fresh = Machine(tmp_path)
    fresh.populate(pack)
    warm, records = fresh.recorded("explain_compile.py", ATPACK_EXPLAIN="1")
    assert warm == {**cold, "cache_hits": [True]}

    explained = fresh.explain(pack, records)
    assert counts(explained) == {"triton_kernel": (1, 0)}
    assert explained["caches"]["triton_kernel"]["hit_rate"] == 1.0
    # the key is the kernel's folder: the one Triton compiled into, populated here
    assert set(lookup_keys(pack, "triton_kernel")) == {cold["folder"]}
    assert (fresh.triton / cold["folder"] / "add_one.json").is_file()


def test_an_edited_triton_kernel_misses_on_its_source(compiled: tuple[Path, Any], tmp_path: Path) -> None:
    pack, cold = compiled
    fresh = Machine(tmp_path)
    fresh.populate(pack)
    edited, records = fresh.recorded("explain_compile.py", "--edited", ATPACK_EXPLAIN="1")
    assert edited["cache_hits"] == [False] and edited["folder"] != cold["folder"]

    explained = fresh.explain(pack, records)
    assert counts(explained) == {"triton_kernel": (0, 1)}
    [miss] = explained["misses"]
    assert miss["key"] == edited["folder"] and miss["name"] == "add_one"
    assert miss["cause"] == f"{NEAREST}add_one in the pack differs in source"
    assert miss["nearest"] == cold["folder"]
    assert differing(miss) == ["source"]  # target, Triton's version and the options are the same
    assert miss["seconds"] > 0  # the compile the miss cost, as Triton timed it


# --------------------------------------------------------------------------- recording is asked for


@pytest.mark.parametrize("asked", ["nothing", "ATPACK_EXPLAIN=0 over the marker"])
def test_a_process_not_asked_to_explain_records_nothing(
    kernels: list[str], tuned: Path, tmp_path: Path, asked: str
) -> None:
    fresh = Machine(tmp_path)
    if asked == "nothing":
        fresh.populate(tuned)
        states = fresh.run("inductor_kernel.py", "read", *kernels)
    else:
        fresh.populate(tuned, "--explain")
        states = fresh.run("inductor_kernel.py", "read", *kernels, ATPACK_EXPLAIN="0")
    assert [k["autotune_cache_state"] for k in states] == ["hit", "hit"]  # the lookups did happen
    assert not (fresh.inductor / RECORDS).exists()
    result = subprocess.run(
        [sys.executable, "-m", "atpack", "explain", str(tuned), "--inductor-dir", str(fresh.inductor)],
        env=fresh.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "no lookup record in" in result.stderr
