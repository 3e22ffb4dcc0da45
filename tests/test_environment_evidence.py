"""A pack records the environment its artifacts were made in, not the packing machine's where
the artifacts say otherwise: caches copied from GPU workers and packed on a CPU node are
refused in one line naming what contradicts, with or without `--environment`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from h100_sample import Sample

import atpack
from atpack import EnvironmentMismatchError
from atpack.evidence import said_by

REPO = Path(__file__).resolve().parent.parent


def _atpack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atpack", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def _pack_here(sample: Sample, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    folders = ["--inductor-dir", str(sample.inductor), "--triton-dir", str(sample.triton)]
    return _atpack("pack", *folders, "-o", str(out), *extra)


def test_the_artifacts_say_where_they_were_made(h100_sample: Sample, tmp_path: Path) -> None:
    pack = tmp_path / "p.atpack"
    h100_sample.pack(pack)
    small: dict[str, bytes] = {}
    with atpack.open(pack) as opened:
        kernel = next(a for a in opened.artifacts if isinstance(a, atpack.TritonKernel))
        gemm = next(a for a in opened.artifacts if isinstance(a, atpack.InductorGemmTimings))
        metadata = next(f.blob for f in kernel.files if f.name == f"{kernel.name}.json")
        small[metadata] = opened.read_blob(metadata)
    assert said_by(kernel, small) == {"triton_version": "3.6.0", "compute_capability": "9.0"}
    said = said_by(gemm, small)
    assert said["device_name"] == "NVIDIA H100 80GB HBM3" and said["cuda_version"] == "13.0"
    assert said["triton_key"] == h100_sample.environment.triton_key


def test_gpu_caches_packed_on_this_cpu_machine_are_refused_in_one_line(h100_sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "p.atpack"
    result = _pack_here(h100_sample, out)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    line = result.stderr
    assert "made elsewhere" in line and "compute_capability '9.0'" in line and "triton_version '3.6.0'" in line
    assert "device_name 'NVIDIA H100 80GB HBM3'" in line
    assert not out.exists() and not list(tmp_path.glob("*.atpack*"))  # nothing published, nothing half-written


def test_an_environment_the_artifacts_contradict_is_refused(h100_sample: Sample, tmp_path: Path) -> None:
    a100 = msgspec.structs.replace(h100_sample.environment, compute_capability="8.0")
    given = tmp_path / "env.json"
    given.write_bytes(msgspec.json.encode(a100))
    result = _pack_here(h100_sample, tmp_path / "p.atpack", "--environment", str(given))
    assert result.returncode == 1 and "compute_capability '9.0' where the given environment records '8.0'" in (
        result.stderr
    )
    with pytest.raises(EnvironmentMismatchError, match="the given environment"):
        h100_sample.pack(tmp_path / "q.atpack", environment=a100)


def test_the_environment_the_artifacts_state_is_packed_and_skipped_here_by_field(
    h100_sample: Sample, tmp_path: Path
) -> None:
    given = tmp_path / "env.json"
    given.write_bytes(msgspec.json.encode(h100_sample.environment))
    out = tmp_path / "p.atpack"
    result = _pack_here(h100_sample, out, "--environment", str(given))
    assert result.returncode == 0, result.stderr
    folders = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    populated = _atpack("populate", str(out), *folders, "--json", "--dry-run")
    report = json.loads(populated.stdout)
    kernels = [o for o in report["outcomes"] if o["kind"] == "triton.kernel/1"]
    assert kernels and all(o["action"] == "skipped" for o in kernels)
    assert all("compute_capability: recorded '9.0', found none" in o["detail"] for o in kernels)
