"""Populate costs what writing the files costs: the process that populates (`atpack populate`, or
`atpack.load_cache_artifacts` in a process that has not imported torch's compiler) imports
neither torch's compiler nor Triton's, builds nothing and unpickles nothing; trusted Megacache
entries are written as torch's own populate writes them, their bytes at their paths."""

from __future__ import annotations

import getpass
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest
from h100_sample import Sample

import atpack
from atpack.populate import populate

COMPILERS = ("torch._inductor", "torch._dynamo", "triton.compiler", "triton.runtime.driver")

LOADED = """
import json, sys
{call}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "triton"))))
"""


@pytest.fixture(scope="module")
def full_pack(h100_sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's folders and its Megacache blob (a compiled graph, pickled), in one pack."""
    blob = lzma.decompress((h100_sample_root / "megacache.bin.xz").read_bytes())
    path = tmp_path_factory.mktemp("full") / "full.atpack"
    sample = Sample(h100_sample_root)
    return sample.pack(path, megacache=blob)


def _loaded(call: str, home: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATPACK_", "TORCHINDUCTOR_", "TRITON_"))}
    env.update(HOME=str(home), TMPDIR=str(home))  # a fresh machine: no atpack cache, default folders
    result = subprocess.run(
        [sys.executable, "-c", LOADED.format(call=call)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "flags",
    [
        [],  # every artifact checked against this machine, and skipped (it is no H100)
        ["--ignore-environment", "--trust-pickles"],  # every artifact written, compiled graphs included
    ],
)
def test_the_populating_process_imports_neither_torch_nor_triton(
    full_pack: Path, tmp_path: Path, flags: list[str]
) -> None:
    call = f"from atpack.cli import main; assert main(['populate', {str(full_pack)!r}, *{flags!r}]) == 0"
    assert _loaded(call, tmp_path) == []
    if flags:  # the compiled graphs are written as they are, by atpack
        inductor = tmp_path / f"torchinductor_{getpass.getuser()}"
        assert [p for p in (inductor / "fxgraph").rglob("*") if p.is_file()]


def test_load_cache_artifacts_imports_no_compiler_in_a_process_that_has_none(full_pack: Path, tmp_path: Path) -> None:
    call = (
        "import torch, atpack; "
        f"r = atpack.load_cache_artifacts({str(full_pack)!r}, trust_pickles=True, ignore_environment=True); "
        "assert r.ok and r.applied, r.format()"
    )
    assert not [m for m in _loaded(call, tmp_path) if m.startswith(COMPILERS)]


def test_a_trusted_compiled_graph_is_written_byte_for_byte_where_torch_writes_it(
    full_pack: Path, tmp_path: Path
) -> None:
    inductor = tmp_path / "inductor"
    report = populate(
        full_pack,
        inductor_dir=str(inductor),
        triton_dir=str(tmp_path / "t"),
        ignore_environment=True,
        trust_pickles=True,
    )
    assert report.ok
    with atpack.open(full_pack) as pack:
        graphs = [a for a in pack.artifacts if a.kind == "megacache.inductor/1"]
        assert graphs
        for graph in graphs:
            (folder,) = (inductor / "fxgraph" / graph.entry_key[1:3] / graph.entry_key).iterdir()
            assert folder.read_bytes() == pack.read_blob(graph.content)
