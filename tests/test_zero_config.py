"""Zero configuration: torch's default folders, and processes that never import atpack.

Every process here starts fresh, as in a container, with neither ``TORCHINDUCTOR_CACHE_DIR``
nor ``TRITON_CACHE_DIR`` set and HOME and the temp folder pointed into the test's own folder:
Inductor's folder is then ``<tmp>/torchinductor_<user>``, the Triton folder Inductor gives its
kernels ``<inductor>/triton/<device>``, Triton's own ``~/.triton/cache``. Pack, populate and
the program that plays the training step each run in a process of their own, through the real
command line. The programs (tests/programs) never import atpack: only torch loads atpack's
plug-in (`atpack.autoload`), by itself, at ``import torch``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import h100_sample
import msgspec
import pytest
from machine import PROGRAMS, Machine

import atpack
from atpack import folders, seam
from atpack.collect import pack_caches
from atpack.env import LocalEnvironment
from atpack.populate import populate
from atpack.replay import MARKER


def _h100_here() -> atpack.Environment:
    """This machine, as an H100 with triton 3.6 (what the sample's kernels say they were made on)."""
    return msgspec.structs.replace(LocalEnvironment().snapshot(), compute_capability="9.0", triton_version="3.6.0")


pytestmark = pytest.mark.slow

# What torch loads of atpack by itself: the package (its names are imported lazily), its errors,
# the plug-in and its switches, the folder rules, and the seam with torch (which holds the replay).
PLUGIN_MODULES = {
    "atpack",
    "atpack.errors",
    "atpack.autoload",
    "atpack.settings",
    "atpack.replay",
    "atpack.folders",
    "atpack.seam",
}
REPLAY_MODULES = PLUGIN_MODULES


@pytest.fixture
def machines(tmp_path: Path) -> tuple[Machine, Machine, Machine]:
    """Where the caches are made, where they are loaded, and a control that loads nothing."""
    return Machine(tmp_path / "made"), Machine(tmp_path / "loaded"), Machine(tmp_path / "control")


@pytest.fixture
def kernel_sources(h100_sample_root: Path, tmp_path: Path) -> list[str]:
    """The sample's reduction kernel (tuned by coordinate descent) and a pointwise kernel, as
    this torch loads them (`h100_sample.kernel_sources`)."""
    return h100_sample.kernel_sources(h100_sample_root, tmp_path)


def _compiled_kernels(sample: Path, into: Path, n: int = 6) -> list[str]:
    """Put `n` of the sample's compiled kernel folders into `into`, as a compile there would
    leave them; returns ``KEY:NAME`` of each."""
    kernels = []
    for folder in sorted((sample / "triton").iterdir()):
        groups = [p.name for p in folder.iterdir() if p.name.startswith("__grp__")]
        if groups and len(kernels) < n:
            shutil.copytree(folder, into / folder.name)
            kernels.append(f"{folder.name}:{groups[0][len('__grp__') : -len('.json')]}")
    return kernels


# --------------------------------------------------------------------------- folders


FOLDER_RULES = """
import json, sys
if sys.argv[1] == "torch":
    import triton
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir, triton_cache_dir
    import os
    inductor = os.path.abspath(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir())
    per_device = os.environ.get("TRITON_CACHE_DIR") or os.path.join(inductor, "triton", "1")
    print(json.dumps([inductor, per_device, os.path.abspath(triton.knobs.cache.dir)]))
else:
    from atpack import folders
    assert "torch" not in sys.modules and "triton" not in sys.modules
    inductor = folders.default_inductor_dir()
    print(json.dumps([inductor, folders.triton_dirs_to_populate(inductor, [1])[0], folders.default_triton_dir()]))
"""


@pytest.mark.parametrize(
    "variables",
    [{}, {"TORCHINDUCTOR_CACHE_DIR": "ind"}, {"TRITON_CACHE_DIR": "tri"}, {"TRITON_HOME": "th"}],
    ids=["defaults", "inductor-variable", "triton-variable", "triton-home"],
)
def test_atpack_finds_the_folders_torch_and_triton_use(
    machines: tuple[Machine, ...], variables: dict[str, str]
) -> None:
    made = machines[0]
    env = {k: str(made.home / v) for k, v in variables.items()}
    asked = made.process([sys.executable, "-c", FOLDER_RULES, "torch"], cwd=made.home, **env)
    followed = made.process([sys.executable, "-c", FOLDER_RULES, "rules"], cwd=made.home, **env)
    assert asked.returncode == followed.returncode == 0, asked.stderr + followed.stderr
    assert json.loads(followed.stdout) == json.loads(asked.stdout)
    if not variables:
        assert json.loads(followed.stdout) == [
            str(made.inductor),
            str(made.inductor / "triton" / "1"),
            str(made.triton),
        ]


# --------------------------------------------------------------------------- pack and populate, defaults


def test_pack_collects_inductors_per_device_triton_folder_and_populate_puts_it_where_inductor_reads(
    machines: tuple[Machine, Machine, Machine], kernel_sources: list[str], h100_sample_root: Path
) -> None:
    made, loaded, control = machines
    tuned = made.run("inductor_kernel.py", "tune", *kernel_sources)
    assert {k["triton_cache_dir"] for k in tuned} == {str(made.inductor / "triton" / "0")}
    kernels = _compiled_kernels(h100_sample_root, made.inductor / "triton" / "0")

    environment = made.home / "h100.json"  # the kernels are the H100's: the pack says so
    environment.write_bytes(msgspec.json.encode(_h100_here()))
    packed = made.atpack("pack", "-o", str(made.home / "p.atpack"), "--environment", str(environment)).stdout
    assert f"read {made.inductor} (inductor)" in packed
    assert f"read {made.inductor}/triton/0 (triton)" in packed
    assert f"no folder at {made.triton} (triton)" in packed
    kinds = [a.kind for a in atpack.open(made.home / "p.atpack").artifacts]
    assert kinds.count("triton.kernel/1") == len(kernels) and kinds.count("inductor.best_config/1") == 2

    # this CPU machine stands in for an H100 (Triton's stand-in driver)
    populated = loaded.atpack("populate", str(made.home / "p.atpack"), "--ignore-environment").stdout
    assert f"{loaded.inductor}/triton/0 (triton)" in populated and f"{loaded.triton} (triton)" in populated
    read = loaded.run("inductor_kernel.py", "read", *kernel_sources, "--triton", *kernels)
    assert [k["autotune_cache_state"] for k in read[:2]] == ["hit", "hit"]
    assert [k["best"] for k in read[:2]] == [k["saved"] for k in tuned]
    assert read[2]["triton_hits"] == [True] * len(kernels)
    assert set(read[2]["atpack_modules"]) <= REPLAY_MODULES  # the program itself imports no atpack

    unwarmed = control.run("inductor_kernel.py", "read", *kernel_sources, "--triton", *kernels)
    assert [k["autotune_cache_state"] for k in unwarmed[:2]] == ["miss", "miss"]
    assert unwarmed[2]["triton_hits"] == [False] * len(kernels)


def test_triton_autotune_results_hit_through_tritons_own_folder(machines: tuple[Machine, Machine, Machine]) -> None:
    made, loaded, control = machines
    tuned = made.run("triton_autotune.py")
    assert tuned["bench_calls"] == 32 and (made.triton).is_dir()
    made.atpack("pack", "-o", str(made.home / "p.atpack"))
    loaded.atpack("populate", str(made.home / "p.atpack"))
    assert loaded.run("triton_autotune.py") == {"bench_calls": 0, "cache_hits": [True, True], "best": tuned["best"]}
    assert control.run("triton_autotune.py")["bench_calls"] == 32


def test_populate_gives_every_device_its_folder(h100_sample_root: Path, tmp_path: Path, monkeypatch: Any) -> None:
    machine = Machine(tmp_path / "m")
    monkeypatch.setenv("TRITON_HOME", str(machine.home))  # read when asked, by triton too (HOME: when imported)
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    made = tmp_path / "made"
    kernels = _compiled_kernels(h100_sample_root, made, n=3)
    pack_caches(tmp_path / "p.atpack", triton_dir=str(made), sources=["triton"], environment=_h100_here())
    report = populate(
        tmp_path / "p.atpack", inductor_dir=str(machine.inductor), devices=[0, 1, 2], ignore_environment=True
    )
    folders = [machine.inductor / "triton" / str(d) for d in range(3)] + [machine.triton]
    assert report.triton_dirs == [str(f) for f in folders]
    assert report.count("written") == 3, report.format()
    for folder in folders:
        for key, name in (k.split(":") for k in kernels):
            group = json.loads((folder / key / f"__grp__{name}.json").read_bytes())
            assert all(path.startswith(f"{folder}/{key}/") for path in group["child_paths"].values())
            assert all(Path(path).is_file() for path in group["child_paths"].values())
    # the per-device folders hold one copy of the bytes: each kernel file is linked, not copied
    for key in (k.split(":")[0] for k in kernels):
        for child in (folders[0] / key).iterdir():
            same = [(folder / key / child.name).stat().st_ino == child.stat().st_ino for folder in folders[1:3]]
            assert same == ([False, False] if child.name.startswith("__grp__") else [True, True])
    hits = machine.process(
        [sys.executable, str(PROGRAMS / "triton_kernels.py"), *kernels],
        cwd=PROGRAMS,
        TRITON_CACHE_DIR=str(folders[2]),  # as Inductor sets it for a rank on device 2
    )
    assert json.loads(hits.stdout) == [True] * len(kernels), hits.stderr


# --------------------------------------------------------------------------- the replay


@pytest.fixture
def replay_site(machines: tuple[Machine, Machine, Machine], kernel_sources: list[str]) -> tuple[Machine, str]:
    """A machine populated (through the command line) with a pack of the reduction kernel's
    coordinate-descent result, and that kernel's source."""
    made, loaded, _ = machines
    made.run("inductor_kernel.py", "tune", kernel_sources[0])
    made.atpack("pack", "-o", str(made.home / "p.atpack"))
    populated = loaded.atpack("populate", str(made.home / "p.atpack")).stdout
    assert f"replay: on for processes using {loaded.inductor}" in populated
    assert (loaded.inductor / MARKER).is_file()
    return loaded, kernel_sources[0]


def test_after_populate_a_process_that_never_imports_atpack_does_not_search_again(
    replay_site: tuple[Machine, str], machines: tuple[Machine, Machine, Machine]
) -> None:
    loaded, reduction = replay_site
    replayed = loaded.run("coordesc_replay.py", reduction)
    assert replayed["searches"] == 0 and replayed["benchmarks"] == 0
    assert replayed["marked"] and replayed["autotune_chose_recorded"]
    assert set(replayed["atpack_modules"]) <= REPLAY_MODULES
    # the control: torch alone searches again, as on any machine that atpack did not populate
    plain = machines[2].run("coordesc_replay.py", reduction)
    assert plain["searches"] == 1 and plain["benchmarks"] == 1
    assert set(plain["atpack_modules"]) <= PLUGIN_MODULES


@pytest.mark.parametrize("switch", ["ATPACK_REPLAY=0", "TORCH_DEVICE_BACKEND_AUTOLOAD=0", "atpack replay off"])
def test_the_replay_is_switched_off_by_a_variable_or_a_command(replay_site: tuple[Machine, str], switch: str) -> None:
    loaded, reduction = replay_site
    env = dict([switch.split("=")]) if "=" in switch else {}
    if not env:
        assert "replay off" in loaded.atpack("replay", "off").stdout
        assert not (loaded.inductor / MARKER).exists()
        assert "replay off" in loaded.atpack("replay", "status").stdout
    plain = loaded.run("coordesc_replay.py", reduction, **env)
    assert plain["searches"] == 1 and plain["benchmarks"] == 1
    assert plain["patched"] == []
    if "TORCH_DEVICE_BACKEND_AUTOLOAD" in env:
        assert plain["atpack_modules"] == []


def test_on_a_torch_release_it_does_not_know_the_replay_stands_aside_with_one_line(
    replay_site: tuple[Machine, str],
) -> None:
    loaded, reduction = replay_site
    result = loaded.process(
        [sys.executable, str(PROGRAMS / "coordesc_replay.py"), reduction, "--torch-version", "2.99.0"], cwd=PROGRAMS
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["searches"] == 1
    said = [line for line in result.stderr.splitlines() if line.startswith("atpack:")]
    (first, last) = (f"{a}.{b}" for a, b in seam.TORCH)
    assert said == [f"atpack: torch 2.99 is not a release atpack knows ({first} to {last}): the replay is off"]


def test_a_torch_internal_the_replay_does_not_know_leaves_every_decision_to_torch(
    replay_site: tuple[Machine, str],
) -> None:
    loaded, reduction = replay_site
    result = loaded.process(
        [sys.executable, str(PROGRAMS / "coordesc_replay.py"), reduction, "--unknown-internal"], cwd=PROGRAMS
    )
    assert result.returncode == 0, result.stderr  # nothing raised inside torch's tuning
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["searches"] == 1 and outcome["benchmarks"] == 1  # torch searched, as without atpack
    said = [line for line in result.stderr.splitlines() if line.startswith("atpack:")]
    assert len(said) == 1 and said[0].startswith("atpack: the replay met a torch internal it does not know (")


# --------------------------------------------------------------------------- capture from the command line


def test_atpack_capture_packs_a_run_that_never_imports_atpack(
    machines: tuple[Machine, Machine, Machine], kernel_sources: list[str]
) -> None:
    made, loaded, _ = machines
    command = [sys.executable, str(PROGRAMS / "inductor_kernel.py"), "tune", *kernel_sources]
    captured = made.atpack("capture", "-o", str(made.home / "c.atpack"), "--", *command)
    tuned = json.loads(captured.stdout.splitlines()[0])
    assert "captured 1 process(es)" in captured.stdout
    pack = atpack.open(made.home / "c.atpack")
    records = [a for a in pack.artifacts if isinstance(a, atpack.InductorBestConfig)]
    assert len(records) == 2 and all(a.found_by_coordesc is True for a in records)

    loaded.atpack("populate", str(made.home / "c.atpack"))
    read = loaded.run("inductor_kernel.py", "read", *kernel_sources)
    assert [k["autotune_cache_state"] for k in read] == ["hit", "hit"]
    assert [k["best"] for k in read] == [k["saved"] for k in tuned]


def test_atpack_capture_of_a_command_that_tunes_nothing_is_an_error(machines: tuple[Machine, ...]) -> None:
    made = machines[0]
    result = made.process(
        [sys.executable, "-m", "atpack", "capture", "-o", str(made.home / "c.atpack"), "--", sys.executable, "-c", "1"],
        cwd=made.home,
    )
    assert result.returncode == 1 and not (made.home / "c.atpack").exists()
    assert result.stderr.count("\n") == 1 and "recorded nothing to pack" in result.stderr


def test_atpack_capture_of_a_command_that_fails_keeps_the_published_pack(
    machines: tuple[Machine, Machine, Machine], kernel_sources: list[str]
) -> None:
    made = machines[0]
    pack = made.home / "c.atpack"
    tune = shlex.join([sys.executable, str(PROGRAMS / "inductor_kernel.py"), "tune", *kernel_sources])
    made.atpack("capture", "-o", str(pack), "--", "sh", "-c", tune)
    published = pack.read_bytes()
    failing = ["--", "sh", "-c", f"{tune} && exit 3"]  # compiles and tunes, then fails
    failed = made.process([sys.executable, "-m", "atpack", "capture", "-o", str(pack), *failing], cwd=made.home)
    assert failed.returncode == 3  # the command's own exit code
    assert failed.stderr.splitlines()[-1] == f"atpack: error: sh exited with 3: {pack} not written"
    assert f"nothing written to {pack}: the command failed" in failed.stdout
    assert pack.read_bytes() == published and [p.name for p in pack.parent.glob("*.atpack*")] == ["c.atpack"]
    kept = made.process(
        [sys.executable, "-m", "atpack", "capture", "--partial", "-o", str(made.home / "partial.atpack"), *failing],
        cwd=made.home,
    )
    assert kept.returncode == 3 and "(the command exited with 3)" in kept.stdout
    records = [
        a for a in atpack.open(made.home / "partial.atpack").artifacts if isinstance(a, atpack.InductorBestConfig)
    ]
    assert len(records) == 2


PLANT = """
import os, sys
from pathlib import Path
Path(os.environ["ATPACK_CAPTURE"], sys.argv[1]).write_bytes(Path(sys.argv[2]).read_bytes())
"""


@pytest.mark.parametrize(
    "name, content, refusal",
    [
        ("999.atpack", "invented", "left inductor.best_config/1"),
        ("999.atpack", "megacache", "not the shape torch gives autotune keys"),
        ("999.atpack", "megacache-config", "not a power of two"),
        ("evil.atpack", "honest", "not a capture of atpack's plug-in"),
    ],
    ids=[
        "a config torch never emits",
        "a Megacache key that climbs out",
        "a Megacache config torch never emits",
        "a name the plug-in never gives",
    ],
)
def test_a_pack_another_process_of_the_command_leaves_in_the_spool_is_refused_not_published(
    machines: tuple[Machine, ...], tmp_path: Path, name: str, content: str, refusal: str
) -> None:
    """Any process of the captured command can write where the plug-in leaves its captures: what
    it leaves is checked as populate checks it, and a capture holding something populate refuses
    everywhere publishes nothing."""
    from test_trust_megacache import AUTOTUNE_KEY, BEST_CONFIG, megacache_pack

    from atpack.testing.packs import INDUCTOR_ENV, best_config, pack_of

    made = machines[0]
    planted = tmp_path / "planted.atpack"
    if content == "megacache":
        planted.write_bytes(megacache_pack(("autotune", "../../outside.best_config", BEST_CONFIG)))
    elif content == "megacache-config":
        invented = b'{"XBLOCK": 384, "num_warps": 4, "num_stages": 1}'
        planted.write_bytes(megacache_pack(("autotune", AUTOTUNE_KEY, invented)))
    else:
        record = best_config(INDUCTOR_ENV.digest, 0)
        if content == "invented":
            record = msgspec.structs.replace(record, kwargs=(("XBLOCK", 384), ("xnumel", 1)))
        planted.write_bytes(pack_of(record))
    out = made.home / "c.atpack"
    command = [sys.executable, "-c", PLANT, name, str(planted)]
    result = made.process([sys.executable, "-m", "atpack", "capture", "-o", str(out), "--", *command], cwd=made.home)
    assert result.returncode == 1 and not out.exists(), (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and refusal in result.stderr, result.stderr


@pytest.mark.parametrize("export", ["atpack capture", "in the process"])
def test_kernels_compiled_before_inductor_chose_its_folder_are_packed_and_populated(
    machines: tuple[Machine, Machine, Machine], kernel_sources: list[str], h100_sample_root: Path, export: str
) -> None:
    """A program's own Triton kernel compiled before Inductor's first kernel lands in Triton's own
    folder; Inductor then points $TRITON_CACHE_DIR at its per-device folder for the rest of the
    process. Both folders are packed, by `atpack capture` around the program or by the program's
    own `atpack.save_cache_artifacts` at its end, and populate puts both where Triton looks."""
    made, loaded, _ = machines
    user_kernels = sorted(p for p in (h100_sample_root / "triton").iterdir() if (p / "__grp__scale_add.json").exists())
    first, second = user_kernels[:2]
    pack = made.home / "p.atpack"
    command = [sys.executable, str(PROGRAMS / "kernels_around_inductor.py"), str(first), str(second), *kernel_sources]
    if export == "atpack capture":
        ran = made.atpack("capture", "-o", str(pack), "--", *command)
    else:
        ran = made.process(command, cwd=PROGRAMS, ATPACK_SAVE_TO=str(pack))
        assert ran.returncode == 0, ran.stderr[-3000:]
    went = json.loads(ran.stdout.splitlines()[0])
    assert (went["before"], went["after"]) == (str(made.triton), str(made.inductor / "triton" / "0"))

    packed = {a.cache_key for a in atpack.open(pack).artifacts if a.kind == "triton.kernel/1"}
    assert {first.name, second.name} <= packed
    loaded.atpack("populate", str(pack), "--ignore-environment")  # the sample's kernels are an H100's
    hits = loaded.run("triton_kernels.py", f"{first.name}:scale_add", f"{second.name}:scale_add")
    assert hits == [True, True]


def test_a_triton_folder_variable_is_the_only_folder_where_the_user_set_it(tmp_path: Path, monkeypatch: Any) -> None:
    """Where the user sets $TRITON_CACHE_DIR, Triton uses that folder alone, and so does atpack.
    Where it names a device's folder under Inductor's, as Inductor sets it, Triton's own folder
    holds the kernels compiled before, and atpack reads and writes it too."""
    inductor, own = tmp_path / "inductor", tmp_path / "home" / ".triton" / "cache"
    (inductor / "triton" / "0").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRITON_HOME", raising=False)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(inductor / "triton" / "0"))
    assert folders.triton_dirs_to_collect(str(inductor)) == [str(inductor / "triton" / "0"), str(own)]
    assert folders.triton_dirs_to_populate(str(inductor), [0, 1]) == [
        str(inductor / "triton" / "0"),
        str(inductor / "triton" / "1"),
        str(own),
    ]
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "mine"))
    assert folders.triton_dirs_to_collect(str(inductor)) == [str(tmp_path / "mine")]
    assert folders.triton_dirs_to_populate(str(inductor), [0, 1]) == [str(tmp_path / "mine")]
