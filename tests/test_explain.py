"""Every hit counted, every miss explained: a process started after `atpack populate --explain`
records its cache lookups, and `atpack explain` names, for each miss, what differs from the
nearest entry of the pack, or why populate left that entry out.

Real compiles on the CPU (Inductor's C++ backend: its FX graph and AOT autograd caches), torch's
default folders, each step a process of its own: the capture, populate, the training step (which
never imports atpack: torch loads the plug-in) and explain. Triton's caches and Inductor's
`.best_config` records: tests/test_explain_kernels.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from machine import PROGRAMS, Machine

import atpack
from atpack.lookups import RECORDS
from atpack.seam import torch_release

pytestmark = pytest.mark.slow

STEP = "explain_step.py"


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pack of a warm-up run: the step, captured on a machine of its own."""
    root = tmp_path_factory.mktemp("explain")
    made = Machine(root / "made")
    made.atpack("capture", "-o", str(root / "step.atpack"), "--", sys.executable, str(PROGRAMS / STEP))
    return root / "step.atpack"


def explained(
    machine: Machine, pack: Path, *step_args: str, populate: tuple[str, ...] = ("--trust-pickles",), **env: str
) -> dict[str, Any]:
    """Populate `pack` with --explain on `machine`, run the step there, and explain it (JSON)."""
    machine.atpack("populate", str(pack), "--explain", *populate)
    machine.run(STEP, *step_args, **env)
    return json.loads(machine.atpack("explain", str(pack), "--json").stdout)


def causes(explanation: dict[str, Any]) -> dict[str, set[str]]:
    """Each cache's misses: the components they name."""
    named: dict[str, set[str]] = {}
    for miss in explanation["misses"]:
        named.setdefault(miss["cache"], set()).update(d["component"] for d in miss["differs"])
    return named


def test_with_nothing_changed_every_lookup_hits(captured: Path, tmp_path: Path) -> None:
    explanation = explained(Machine(tmp_path), captured)
    caches = explanation["caches"]
    assert caches["aot_autograd"]["hits"] == 1 and caches["fx_graph"]["hits"] == 2
    assert all(c["misses"] == 0 and c["hit_rate"] == 1.0 for c in caches.values())
    assert explanation["misses"] == []


@pytest.mark.parametrize(
    ("change", "env", "component", "found"),
    [
        (["--inductor", "epilogue_fusion=false"], {}, "inductor_config[epilogue_fusion]", "False"),
        (["--dtype", "float64"], {}, "example_inputs[", "float64"),
        (["--batch", "8"], {}, "example_inputs[", "[8, 32]"),
        ([], {"TORCH_COMPILE_CACHE_KEY_TAG": "another-tag"}, "cache_key_tag", "another-tag"),
    ],
    ids=["inductor-config-flag", "dtype", "shape", "cache-key-tag"],
)
def test_a_miss_names_the_component_that_changed(
    captured: Path, tmp_path: Path, change: list[str], env: dict[str, str], component: str, found: str
) -> None:
    explanation = explained(Machine(tmp_path), captured, *change, **env)
    assert explanation["caches"]["fx_graph"]["hits"] == 0
    for miss in explanation["misses"]:
        assert miss["cause"].startswith("no entry for this key; the nearest in the pack differs in")
        named = [d for d in miss["differs"] if d["component"].startswith(component)]  # an input: whichever
        assert any(found in (d["found"] or "") for d in named), (miss["cache"], miss["differs"])
    assert {m["cache"] for m in explanation["misses"]} == {"aot_autograd", "fx_graph"}


def test_dynamic_shapes_are_named_by_the_graph_and_its_inputs(captured: Path, tmp_path: Path) -> None:
    explanation = explained(Machine(tmp_path), captured, "--dynamic")
    named = causes(explanation)
    assert "gm" in named["fx_graph"]
    assert any(name.startswith("example_inputs[") for name in named["fx_graph"])


def _restated(pack: Path, into: Path, **stated: str) -> Path:
    """`pack` rewritten with its environment stating other values (as a pack made elsewhere would)."""
    with atpack.open(pack) as source, atpack.create(into) as writer:
        (env,) = source.manifest.environments.values()
        digest = writer.add_environment(msgspec.structs.replace(env, **stated))
        blobs = dict(source.read_blobs(sorted({d for a in source.artifacts for d in a.blob_refs()})))
        for data in blobs.values():
            writer.add_blob(data)
        for artifact in source.artifacts:
            writer.add(msgspec.structs.replace(artifact, env=digest))
    return into


@pytest.mark.parametrize(
    ("stated", "reason"),
    [
        ({"triton_version": "3.1.0"}, "triton_version: recorded '3.1.0', found '"),
        ({"device_name": "NVIDIA H100 80GB HBM3"}, "device_name: recorded 'NVIDIA H100 80GB HBM3', found none"),
    ],
    ids=["another-triton-version", "another-device"],
)
def test_an_entry_populate_left_out_is_named_with_populates_reason(
    captured: Path, tmp_path: Path, stated: dict[str, str], reason: str
) -> None:
    pack = _restated(captured, tmp_path / "elsewhere.atpack", **stated)
    explanation = explained(Machine(tmp_path / "m"), pack)
    assert explanation["misses"] and explanation["caches"]["fx_graph"]["hits"] == 0
    for miss in explanation["misses"]:
        assert miss["cause"].startswith("the pack holds this entry, and populate leaves it out here: ")
        assert reason in miss["cause"]


def test_a_pickle_populate_was_not_told_to_trust_is_named(captured: Path, tmp_path: Path) -> None:
    explanation = explained(Machine(tmp_path), captured, populate=())
    assert explanation["misses"]
    for miss in explanation["misses"]:
        assert "populate writes it only with --trust-pickles" in miss["cause"], miss


def test_a_process_records_only_where_asked(captured: Path, tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.atpack("populate", str(captured), "--trust-pickles")
    machine.run(STEP)
    assert not (machine.inductor / RECORDS).exists()
    machine.run(STEP, ATPACK_EXPLAIN="1")
    assert len(list((machine.inductor / RECORDS).iterdir())) == 1
    machine.atpack("populate", str(captured), "--trust-pickles", "--explain")
    machine.run(STEP, ATPACK_EXPLAIN="0")
    assert len(list((machine.inductor / RECORDS).iterdir())) == 1
    machine.atpack("explain", "--off")
    machine.run(STEP)
    assert len(list((machine.inductor / RECORDS).iterdir())) == 1


def test_an_entry_populated_elsewhere_is_said_missing_from_the_folder_read(captured: Path, tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.atpack("populate", str(captured), "--trust-pickles")
    other = str(tmp_path / "another-folder")
    machine.run(STEP, ATPACK_EXPLAIN="1", TORCHINDUCTOR_CACHE_DIR=other)
    explanation = json.loads(machine.atpack("explain", str(captured), "--json", "--inductor-dir", other).stdout)
    assert explanation["misses"]
    for miss in explanation["misses"]:
        assert "it is not in the folder this process read" in miss["cause"], miss  # wherever populate wrote it


@pytest.fixture(scope="module")
def gemm_captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pack of a warm-up run that tuned a GEMM (max-autotune on the CPU)."""
    root = tmp_path_factory.mktemp("explain-gemm")
    made = Machine(root / "made")
    made.atpack("capture", "-o", str(root / "gemm.atpack"), "--", sys.executable, str(PROGRAMS / "explain_gemm.py"))
    return root / "gemm.atpack"


@pytest.mark.skipif(
    torch_release() == (2, 8),
    reason="torch 2.8's CPU GEMM template does not compile with this machine's g++ "
    "(a template declaration at block scope, tools/results/version_matrix.md)",
)
def test_a_gemm_tuned_by_the_capture_is_a_hit_and_another_shape_names_its_inputs(
    gemm_captured: Path, tmp_path: Path
) -> None:
    # without --trust-pickles the graph compiles again, and reads the GEMM's timings from the pack
    machine = Machine(tmp_path)
    machine.atpack("populate", str(gemm_captured), "--explain")
    machine.run("explain_gemm.py")
    same = json.loads(machine.atpack("explain", str(gemm_captured), "--json").stdout)
    assert (same["caches"]["gemm"]["hits"], same["caches"]["gemm"]["misses"]) == (1, 0)
    assert same["benchmarks"] == 0
    for record in (machine.inductor / RECORDS).iterdir():
        record.unlink()
    machine.run("explain_gemm.py", "--batch", "48")
    other = json.loads(machine.atpack("explain", str(gemm_captured), "--json").stdout)
    (miss,) = [m for m in other["misses"] if m["cache"] == "gemm"]
    assert miss["name"] == "packed_linear" and other["benchmarks"] > 0
    named = [d["component"] for d in miss["differs"]]
    assert named[0] == "inputs" and set(named) <= {"inputs", "choices"}  # a template's choice names its shape
    assert miss["cause"].startswith("no entry for this key; the nearest of packed_linear in the pack differs in inputs")
