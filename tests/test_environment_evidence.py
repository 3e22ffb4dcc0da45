"""A pack records the environment its artifacts were made in, not the packing machine's where
the artifacts say otherwise: caches copied from GPU workers and packed on a CPU node record what
they state; an `--environment` they contradict, or caches of two machines packed as one, are
refused in one line naming what contradicts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from h100_sample import Sample

import atpack
from atpack import EnvironmentMismatchError
from atpack.kinds import of

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
    assert of(kernel).says(kernel, small) == {"triton_version": "3.6.0", "compute_capability": "9.0"}
    said = of(gemm).says(gemm, small)
    assert said["device_name"] == "NVIDIA H100 80GB HBM3" and said["cuda_version"] == "13.0"
    assert said["triton_key"] == h100_sample.environment.triton_key


def test_gpu_caches_packed_on_this_cpu_machine_record_what_they_state(h100_sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "p.atpack"
    result = _pack_here(h100_sample, out)
    assert result.returncode == 0, result.stderr
    assert "made elsewhere" in result.stdout and "compute_capability '9.0'" in result.stdout
    with atpack.open(out) as opened:
        (recorded,) = opened.manifest.environments.values()
        envs = {a.env for a in opened.artifacts}
    assert envs == {recorded.digest}
    expected = h100_sample.environment
    assert recorded.device_name == expected.device_name == "NVIDIA H100 80GB HBM3"
    assert (recorded.compute_capability, recorded.triton_version, recorded.cuda_version) == ("9.0", "3.6.0", "13.0")
    assert recorded.triton_key == expected.triton_key
    # the host modules' file names say which Python: cpython-312 (this machine runs another)
    assert (recorded.python_abi, recorded.platform) == (expected.python_abi, "linux-x86_64")
    # nothing of this machine: its torch is not where the caches were made
    assert recorded.torch_version is None and recorded.torch_key is None

    # populated here, every GPU artifact is skipped on a field it names; nothing is written
    folders = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    populated = json.loads(_atpack("populate", str(out), *folders, "--json", "--dry-run").stdout)
    assert populated["outcomes"] and all(o["action"] == "skipped" for o in populated["outcomes"])
    kernels = [o for o in populated["outcomes"] if o["kind"] == "triton.kernel/1"]
    assert kernels and all("triton_key" in o["detail"] for o in kernels)
    best = [o for o in populated["outcomes"] if o["kind"] == "inductor.best_config/1"]
    assert best and all("device_name: recorded 'NVIDIA H100 80GB HBM3'" in o["detail"] for o in best)


def test_caches_of_two_machines_packed_as_one_are_refused_in_one_line(h100_sample: Sample, tmp_path: Path) -> None:
    triton = tmp_path / "triton"
    shutil.copytree(h100_sample.triton, triton)
    kernel = next(p for p in triton.glob("*/*.json") if not p.name.startswith("__grp__"))
    metadata = json.loads(kernel.read_text())
    metadata["target"]["arch"] = 80  # one kernel of an A100 among the H100's
    kernel.write_text(json.dumps(metadata))
    out = tmp_path / "p.atpack"
    result = _atpack("pack", "--inductor-dir", str(h100_sample.inductor), "--triton-dir", str(triton), "-o", str(out))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "state different compute_capability" in result.stderr and "'8.0'" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.atpack*"))  # nothing published, nothing half-written


def test_host_code_made_elsewhere_that_names_no_python_is_left_out(h100_sample: Sample, tmp_path: Path) -> None:
    triton = tmp_path / "triton"
    shutil.copytree(h100_sample.triton, triton)
    for named in triton.glob("*/*.cpython-*.so"):  # as older Tritons name them: no interpreter in the name
        named.rename(named.parent / (named.name.split(".")[0] + ".so"))
    out = tmp_path / "p.atpack"
    result = _atpack("pack", "--inductor-dir", str(h100_sample.inductor), "--triton-dir", str(triton), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("host code made on another machine, and nothing states the Python ABI") == 2
    with atpack.open(out) as opened:
        assert not [a for a in opened.artifacts if a.kind == "triton.host_module/1"]
        assert opened.manifest.environments  # the rest is packed
        assert [a for a in opened.artifacts if isinstance(a, atpack.TritonKernel)]


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
