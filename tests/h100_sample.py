"""The real H100 sample (tests/data): Inductor and Triton cache folders captured with torch 2.11,
triton 3.6 on an NVIDIA H100, and the environment they were made in."""

from __future__ import annotations

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
