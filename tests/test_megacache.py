"""Torch's Megacache: blobs converted both ways, entries replayed through torch's own hooks,
pickles refused unless trusted, and live capture of a real compile."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from h100_sample import ENVIRONMENT, kernel_sources

import atpack
from atpack.adapters.megacache import blob_entries, write_blob
from atpack.collect import pack_caches
from atpack.env import LocalEnvironment, environment_from_json
from atpack.populate import populate

PROGRAMS = Path(__file__).parent / "programs"
REPO = Path(__file__).resolve().parent.parent
SAMPLE_ENV = environment_from_json(ENVIRONMENT.read_bytes())


@pytest.fixture(scope="session")
def sample_blob(h100_sample_root: Path) -> bytes:
    """The blob `torch.compiler.save_cache_artifacts()` returned on the H100 (28 MB)."""
    return lzma.decompress((h100_sample_root / "megacache.bin.xz").read_bytes())


@pytest.fixture(scope="session")
def sample_pack(sample_blob: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("megacache") / "sample.atpack"
    pack_caches(path, sources=[], megacache=sample_blob, environment=SAMPLE_ENV)
    return path


def _triples(artifacts: dict[str, list[Any]]) -> set[tuple[str, str, bytes]]:
    return {(kind, a.key, a.content) for kind, items in artifacts.items() for a in items}


# --------------------------------------------------------------------------- blobs in and out


def test_the_sample_blob_converts_to_a_pack_and_back_byte_for_byte(sample_blob: bytes, sample_pack: Path) -> None:
    kinds = sorted(a.kind for a in atpack.open(sample_pack).artifacts)
    assert kinds == sorted(["megacache.aot_autograd/1", "megacache.inductor/1"] + ["megacache.autotune/1"] * 4)
    assert atpack.to_megacache(sample_pack, trust_pickles=True) == sample_blob


def test_torch_reads_the_re_emitted_blob_as_the_same_entries(sample_blob: bytes, sample_pack: Path) -> None:
    from torch.compiler._cache import CacheArtifactManager

    ours = CacheArtifactManager.deserialize(atpack.to_megacache(sample_pack, trust_pickles=True))
    theirs = CacheArtifactManager.deserialize(sample_blob)
    assert ours is not None and theirs is not None
    assert _triples(ours) == _triples(theirs)
    assert {kind for kind, _, _ in _triples(ours)} == {"autotune", "inductor", "aot_autograd"}


def test_the_pack_is_at_least_20x_smaller_than_the_blob(sample_blob: bytes, sample_pack: Path) -> None:
    ratio = len(sample_blob) / sample_pack.stat().st_size
    print(f"blob {len(sample_blob):,} bytes, pack {sample_pack.stat().st_size:,} bytes: {ratio:.1f}x")
    assert ratio >= 20


def test_the_command_line_converts_both_ways(sample_blob: bytes, tmp_path: Path) -> None:
    blob, pack, back = tmp_path / "in.bin", tmp_path / "m.atpack", tmp_path / "out.bin"
    blob.write_bytes(sample_blob)
    run = [sys.executable, "-m", "atpack"]
    made = subprocess.run(
        [*run, "pack", "--megacache", str(blob), "--environment", str(ENVIRONMENT), "-o", str(pack)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1  megacache.inductor/1" in made.stdout
    subprocess.run([*run, "megacache", str(pack), "-o", str(back), "--trust-pickles"], capture_output=True, check=True)
    assert back.read_bytes() == sample_blob


def _with_crc(body: bytes) -> bytes:
    return zlib.crc32(body).to_bytes(4, "big") + body


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00" * 8, "too short"),
        (_with_crc((2).to_bytes(8, "big")), "version 2"),
        (_with_crc((1).to_bytes(8, "big") + (5).to_bytes(8, "big") + b"dGVz"), "past the end"),
        (_with_crc((1).to_bytes(8, "big") + (4).to_bytes(8, "big") + b"!!!!"), "not base64"),
        (_with_crc((1).to_bytes(8, "big") + (4).to_bytes(8, "big") + b"dGVz" + (2**40).to_bytes(8, "big")), "limit"),
        (_with_crc((1).to_bytes(8, "big") + (4).to_bytes(8, "big") + b"dGVz" + (1).to_bytes(8, "big")), "truncated"),
    ],
    ids=["short", "version", "overlong", "base64", "count", "truncated"],
)
def test_a_malformed_blob_is_refused_naming_the_problem(blob: bytes, message: str) -> None:
    with pytest.raises(atpack.FormatError, match=message):
        blob_entries(blob)


def test_a_blob_whose_checksum_fails_is_refused(sample_blob: bytes) -> None:
    damaged = bytearray(sample_blob)
    damaged[len(damaged) // 2] ^= 0x01
    with pytest.raises(atpack.FormatError, match="checksum mismatch"):
        blob_entries(bytes(damaged))
    with pytest.raises(atpack.FormatError, match="checksum mismatch"):
        blob_entries(sample_blob[:-1])


def test_writing_entries_gives_a_blob_that_reads_back_the_same() -> None:
    entries = [("autotune", "ab/x.best_config", b"{}"), ("autotune", "cd/y", b"1"), ("pgo", "k", b"\x80\x04")]
    assert blob_entries(write_blob(entries)) == entries


# --------------------------------------------------------------------------- replay and trust


def test_without_trust_pickled_entries_are_skipped_and_data_is_replayed_where_torch_reads_it(
    sample_pack: Path, tmp_path: Path
) -> None:
    report = populate(
        sample_pack, inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"), ignore_environment=True
    )
    by_kind = {(o.kind, o.action) for o in report.outcomes}
    assert by_kind == {
        ("megacache.autotune/1", "written"),
        ("megacache.autotune/1", "present"),  # an earlier record of a key a later entry replaces
        ("megacache.inductor/1", "skipped"),
        ("megacache.aot_autograd/1", "skipped"),
    }
    for o in report.outcomes:
        if o.action == "skipped":
            assert "pickle, unpickled when loaded, which runs code" in o.detail and "trust_pickles" in o.detail
        if o.action == "present":
            assert "superseded by the pack's megacache.autotune/1 for the same file" in o.detail
    # the .best_config files are where torch writes them; the later entry of each key won, as in torch
    best = tmp_path / "i" / "za" / "c897efa0cf0a3e13b280a5cc897e56facd82d55179f0561409d6a6dfbf3010dc.best_config"
    assert json.loads(best.read_text())["found_by_coordesc"] is True
    assert not (tmp_path / "i" / "fxgraph").exists()


def test_megacache_entries_of_another_environment_are_skipped(sample_pack: Path, tmp_path: Path) -> None:
    report = populate(sample_pack, inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"), trust_pickles=True)
    assert {o.action for o in report.outcomes} == {"skipped"}
    # the fields this machine differs in from the H100 (with torch 2.11.0+cu130, not the torch version)
    here = LocalEnvironment().snapshot()
    differ = [f for f in ("torch_version", "device_name", "python_abi") if getattr(here, f) != getattr(SAMPLE_ENV, f)]
    assert differ
    for o in report.outcomes:
        assert any(f"{f}: recorded {getattr(SAMPLE_ENV, f)!r}" in o.detail for f in differ), o.detail


# --------------------------------------------------------------------------- live capture


def _program(name: str, *args: str, **env: str) -> Any:
    result = subprocess.run(
        [sys.executable, str(PROGRAMS / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=PROGRAMS,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _dirs(root: Path) -> dict[str, str]:
    return {"TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"), "TRITON_CACHE_DIR": str(root / "triton")}


@pytest.mark.slow
def test_a_captured_cpu_compile_saved_to_s3_warms_a_fresh_process(s3: Any, tmp_path: Path) -> None:
    url = s3.url("model.atpack")
    options = {"ATPACK_STORAGE_OPTIONS": json.dumps(s3.storage_options)}
    saved = _program("compile_cpu.py", "save", url, **options, **_dirs(tmp_path / "a"))
    assert saved["counters"]["fxgraph_cache_miss"] == 2 and saved["counters"]["autograd_cache_miss"] == 1
    assert {"megacache.inductor/1", "megacache.aot_autograd/1"} <= set(saved["kinds"])

    trusted = _program("compile_cpu.py", "load", url, "--trust-pickles", **options, **_dirs(tmp_path / "b"))
    assert trusted["counters"] == {
        "fxgraph_cache_hit": 2,
        "fxgraph_cache_miss": 0,
        "autograd_cache_hit": 1,
        "autograd_cache_miss": 0,
    }
    assert trusted["outputs"] == saved["outputs"]

    untrusted = _program("compile_cpu.py", "load", url, **options, **_dirs(tmp_path / "c"))
    pickled = [r for r in untrusted["report"] if r[0] in ("megacache.inductor/1", "megacache.aot_autograd/1")]
    assert pickled and all(action == "skipped" and "runs code" in why for _, action, why in pickled)
    assert untrusted["counters"]["fxgraph_cache_hit"] == 0 and untrusted["counters"]["autograd_cache_hit"] == 0
    assert untrusted["outputs"] == saved["outputs"]


@pytest.mark.slow
def test_a_captured_best_config_of_a_gpu_shaped_kernel_hits_after_load(h100_sample_root: Path, tmp_path: Path) -> None:
    kernel = kernel_sources(h100_sample_root, tmp_path)[0]  # the reduction kernel, as this torch loads it
    pack = str(tmp_path / "captured.atpack")
    tuned = _program("inductor_kernel.py", "tune", kernel, ATPACK_CAPTURE_TO=pack, **_dirs(tmp_path / "a"))
    assert [k["autotune_cache_state"] for k in tuned] == ["miss"]
    kinds = sorted(a.kind for a in atpack.open(pack).artifacts)
    assert kinds == ["inductor.best_config/1", "lookup.key/1", "megacache.autotune/1"]  # and the key it looked up

    report = atpack.load_cache_artifacts(
        pack, inductor_dir=str(tmp_path / "b" / "inductor"), triton_dir=str(tmp_path / "b" / "triton")
    )
    assert report.ok and report.count("written") == 1  # the torch-recorded copy is superseded by the file
    assert [o.detail for o in report.outcomes if o.action == "present"] == [
        "superseded by the pack's inductor.best_config/1 for the same file"
    ]
    read = _program("inductor_kernel.py", "read", kernel, **_dirs(tmp_path / "b"))
    assert read[0]["autotune_cache_state"] == "hit" and read[0]["best"] == tuned[0]["saved"]
