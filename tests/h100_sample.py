"""The real H100 sample (tests/data): Inductor and Triton cache folders captured with torch 2.11,
triton 3.6 on an NVIDIA H100, and the environment they were made in."""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from atpack.artifacts import Environment
from atpack.collect import pack_caches
from atpack.env import environment_from_json

DATA = Path(__file__).parent / "data"
ARCHIVE = DATA / "h100-torch2.11-triton3.6-mlp.tar.xz"
ENVIRONMENT = DATA / "h100-torch2.11-triton3.6-mlp.environment.json"
CAPTURE_ROOT = "/tmp/tmp.VeCmDqFOG2/mlp"
"""Where the caches lived on the H100 (the __grp__ files name it)."""
REDUCTION = "inductor/za/czaymuaubtkmvo5w2rzqz5zsostlr5g2i5clj5rcmrb7xuu34lyb.py"
"""The reduction kernel Inductor tuned by coordinate descent (its module, as Inductor wrote it)."""
FUSION_BENCHMARK = "inductor/ej/cejugkvjzrta4u6w2aoovjht3atemi6yiigqzlheuqn4t5iattwo.py"
"""A fusion benchmark module: a pointwise kernel and its benchmark harness (which needs CUDA)."""


class Sample:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.inductor = root / "inductor"
        self.triton = root / "triton"
        self.environment: Environment = environment_from_json(ENVIRONMENT.read_bytes())

    def pack(self, path: Path, **kwargs: Any) -> Path:
        """Pack the sample's cache folders at `path`, made in the sample's environment unless
        `environment=` says otherwise (other keywords go to `atpack.pack_caches`)."""
        kwargs.setdefault("environment", self.environment)
        pack_caches(path, inductor_dir=str(self.inductor), triton_dir=str(self.triton), **kwargs)
        return path

    def files(self, which: str) -> dict[str, bytes]:
        """Relative path -> bytes of every file in one of the two folders."""
        base = self.inductor if which == "inductor" else self.triton
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def h100_sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("h100-sample")
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(root, filter="data")
    return root / "mlp"


@pytest.fixture
def h100_sample(h100_sample_root: Path, tmp_path: Path) -> Sample:
    """A private copy of the sample (tests may modify it)."""
    copy = tmp_path / "sample"
    shutil.copytree(h100_sample_root, copy, ignore=shutil.ignore_patterns("megacache.bin.xz"))
    return Sample(copy)


def for_this_torch(source: str) -> str:
    """An Inductor kernel module of the sample (torch 2.11) as this torch can load it: the device
    properties it does not know left out (torch 2.8 and 2.9 have no ``max_threads_per_block``),
    the rest as Inductor wrote it."""
    from torch._inductor.runtime.hints import DeviceProperties

    def known(call: re.Match[str]) -> str:
        fields = [f for f in call.group(1).split(", ") if f.split("=")[0] in DeviceProperties._fields]
        return "DeviceProperties(" + ", ".join(fields) + ")"

    return re.sub(r"DeviceProperties\(([^)]*)\)", known, source)


def kernel_sources(root: Path, into: Path) -> list[str]:
    """Two GPU-shaped kernel modules of the sample at `root`, written into `into` as this torch
    loads them: the reduction kernel Inductor tuned by coordinate descent, and the pointwise
    kernel of a fusion benchmark module with its benchmark harness cut off."""
    reduction = into / "reduction.py"
    reduction.write_text(for_this_torch((root / REDUCTION).read_text()))
    bench = (root / FUSION_BENCHMARK).read_text()
    kernel = bench[: bench.index("\ndef get_args")]
    kernel = "\n".join(
        line for line in kernel.splitlines() if "rand_strided" not in line and "get_raw_stream" not in line
    )
    pointwise = into / "pointwise.py"
    pointwise.write_text(for_this_torch(kernel) + "\n")
    return [str(reduction), str(pointwise)]
