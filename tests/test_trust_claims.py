"""An environment record vouches only for what it says; what an artifact states itself is held to
the machine at populate.

A pack whose environment records only the fields each kind requires (its releases), as this
machine has them, passes the environment check whatever the artifacts were built for, unless
populate reads their own word: the artifacts say where they were made:
a kernel's metadata names its GPU architecture and Triton release, a GEMM timing file names its
device. Populate reads that word when it reads the artifact's check blob, and an artifact that
states another machine than this one fails with a one-line `EnvironmentMismatchError`, nothing of
it written; `--ignore-environment` overrides it as it overrides the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from test_hostile import Site

import atpack
from atpack.env import LocalEnvironment
from atpack.populate import PopulateReport, populate
from atpack.testing.packs import gemm_timings, pack_of, triton_kernel

_HERE = LocalEnvironment()
RECORD = atpack.Environment(
    python_abi=_HERE.get("python_abi"), torch_version=_HERE.get("torch_version"), triton_version="3.6.0"
)
"""What each kind requires recorded, as this machine has it, and nothing of the device."""
H100 = {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "triton_version": "3.6.0"}


def _machine(**values: str) -> LocalEnvironment:
    """This machine, with a GPU and Triton release said for it."""
    local = LocalEnvironment()
    local._values.update(values)  # what NVML and Triton's files would say on that machine
    return local


def _kernel(n: int, *, triton_version: str, arch: int) -> tuple[atpack.TritonKernel, list[tuple[str, bytes]]]:
    metadata = {"name": f"kernel_{n}", "triton_version": triton_version, "target": {"backend": "cuda", "arch": arch}}
    files = [(f"kernel_{n}.json", json.dumps(metadata).encode()), (f"kernel_{n}.cubin", b"\x7fELF binary")]
    return triton_kernel(RECORD.digest, n, files), files


def _populate(site: Site, data: bytes, **options: Any) -> PopulateReport:
    """Populate as a user does, the environment checked, on an H100 with Triton 3.6."""
    return populate(
        site.put(data),
        inductor_dir=str(site.inductor),
        triton_dir=str(site.triton),
        environment=_machine(**H100),
        **options,
    )


def _pack(*artifacts: tuple[atpack.Artifact, list[tuple[str, bytes]]]) -> bytes:
    blobs = tuple(data for _, files in artifacts for _, data in files)
    return pack_of(*(a for a, _ in artifacts), blobs=blobs, envs=(RECORD,))


def test_a_kernel_that_states_another_triton_release_and_gpu_is_not_written(tmp_path: Path) -> None:
    site = Site(tmp_path)
    foreign, foreign_files = _kernel(0, triton_version="3.1.0", arch=80)
    own, own_files = _kernel(1, triton_version="3.6.0", arch=90)
    before = site.snapshot()
    report = _populate(site, _pack((foreign, foreign_files), (own, own_files)))
    outcome = {o.key: o for o in report.outcomes}
    assert outcome[foreign.key].action == "failed" and outcome[foreign.key].error == "EnvironmentMismatchError"
    assert "it states triton_version '3.1.0' itself, this machine has '3.6.0'" in outcome[foreign.key].detail
    assert not (site.triton / foreign.cache_key).exists()
    assert outcome[own.key].action == "written" and (site.triton / own.cache_key / "kernel_1.cubin").is_file()
    assert site.snapshot() != before


def test_a_kernel_built_for_another_gpu_architecture_is_not_written(tmp_path: Path) -> None:
    site = Site(tmp_path)
    a100, files = _kernel(0, triton_version="3.6.0", arch=80)
    report = _populate(site, _pack((a100, files)))
    [outcome] = report.outcomes
    assert outcome.action == "failed", report.format(verbose=True)
    assert "it states compute_capability '8.0' itself, this machine has '9.0'" in outcome.detail
    assert "\n" not in outcome.detail
    assert not (site.triton / a100.cache_key).exists()


def test_a_gemm_timing_file_that_names_another_device_is_not_merged(tmp_path: Path) -> None:
    site = Site(tmp_path)
    timings = msgspec.structs.replace(gemm_timings(RECORD.digest, 0), env=RECORD.digest)
    a100 = msgspec.structs.replace(timings, system=msgspec.structs.replace(timings.system, device_name="NVIDIA A100"))
    report = _populate(site, pack_of(a100, envs=(RECORD,)))
    [outcome] = report.outcomes
    assert outcome.action == "failed" and "it states device_name 'NVIDIA A100' itself" in outcome.detail
    assert not (site.inductor / "cache").exists()


def test_ignoring_the_environment_overrides_what_artifacts_state_too(tmp_path: Path) -> None:
    site = Site(tmp_path)
    foreign, files = _kernel(0, triton_version="3.1.0", arch=80)
    report = _populate(site, _pack((foreign, files)), ignore_environment=True)
    assert [o.action for o in report.outcomes] == ["written"]
