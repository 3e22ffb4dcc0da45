"""Collecting cache folders into a pack and populating fresh folders from it."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

import msgspec
from fsspec.callbacks import Callback
from h100_sample import CAPTURE_ROOT, Sample

import atpack
from atpack.artifacts import InductorBestConfig, InductorGemmTimings, TritonKernel
from atpack.collect import pack_caches
from atpack.env import LocalEnvironment
from atpack.populate import PopulateReport, populate
from atpack.testing import packs


def _populate(pack: Path, dest: Path, **kwargs: object) -> PopulateReport:
    return populate(pack, inductor_dir=str(dest / "inductor"), triton_dir=str(dest / "triton"), **kwargs)  # type: ignore[arg-type]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- round trip


def test_every_sample_result_round_trips_byte_for_byte(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "sample.atpack", with_ir=True)
    report = _populate(pack, tmp_path / "out", ignore_environment=True, trust_pickles=True)
    assert report.ok and report.count("written") == len(atpack.open(pack).artifacts) == 96

    restored = _tree(tmp_path / "out" / "inductor")
    original = h100_sample.files("inductor")
    results = [p for p in original if p.endswith((".best_config", ".kernel_perf")) or p.startswith("cache/")]
    assert len(results) == 5  # 2 .best_config, 2 .kernel_perf, 1 GEMM timing file
    for path in results:
        assert restored[path] == original[path], path

    restored = _tree(tmp_path / "out" / "triton")
    original = h100_sample.files("triton")
    autotune = [p for p in original if p.endswith(".autotune.json")]
    groups = [p for p in original if os.path.basename(p).startswith("__grp__")]
    assert len(autotune) == 2 and len(groups) == 87
    assert set(restored) == set(original)
    out = tmp_path / "out" / "triton"
    for path, data in original.items():
        if path in groups:
            moved = data.decode().replace(f"{CAPTURE_ROOT}/triton", str(out))
            assert restored[path].decode() == moved, path
            assert all(os.path.exists(p) for p in json.loads(restored[path])["child_paths"].values())
        else:
            assert restored[path] == data, path


def test_host_modules_run_code_and_are_written_only_when_trusted(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    report = _populate(pack, tmp_path / "out", ignore_environment=True)
    hosts = [o for o in report.outcomes if o.kind == "triton.host_module/1"]
    assert len(hosts) == 2 and all(o.action == "skipped" and "native host module" in o.detail for o in hosts)
    assert not list((tmp_path / "out").rglob("*.so"))
    trusted = _populate(pack, tmp_path / "out", ignore_environment=True, trust_pickles=True)
    assert {o.action for o in trusted.outcomes if o.kind == "triton.host_module/1"} == {"written"}
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "out").rglob("*.so")) == ["__triton_launcher", "cuda_utils"]


def test_a_pack_keeps_what_a_warm_start_reads_and_the_ir_only_when_asked(h100_sample: Sample, tmp_path: Path) -> None:
    full = h100_sample.pack(tmp_path / "full.atpack", with_ir=True)
    small = h100_sample.pack(tmp_path / "small.atpack")
    assert small.stat().st_size < full.stat().st_size / 2
    with atpack.open(full) as pack:
        with_ir = [a for a in pack.artifacts if isinstance(a, TritonKernel)]
        assert {os.path.splitext(f.name)[1] for k in with_ir for f in k.files} >= {".ptx", ".ttir", ".ttgir", ".llir"}
    kernels = [a for a in atpack.open(small).artifacts if isinstance(a, TritonKernel)]
    assert len(kernels) == 87
    for k in kernels:
        assert sorted(f.name for f in k.files) == sorted([f"{k.name}.json", f"{k.name}.cubin"])
    _populate(small, tmp_path / "out", ignore_environment=True)
    group_file = next((tmp_path / "out" / "triton").rglob("__grp__*.json"))
    children = json.loads(group_file.read_text())["child_paths"]
    assert sorted(os.path.splitext(c)[1] for c in children) == [".cubin", ".json"]
    assert all(os.path.exists(p) for p in children.values())


def test_collect_reports_malformed_files_and_keeps_going(h100_sample: Sample, tmp_path: Path) -> None:
    broken = next(h100_sample.inductor.rglob("*.best_config"))
    broken.write_text('{"XBLOCK": 1, "num_war')
    report = pack_caches(
        tmp_path / "p.atpack",
        inductor_dir=str(h100_sample.inductor),
        triton_dir=str(h100_sample.triton),
        environment=h100_sample.environment,
    )
    assert [s.path for s in report.skipped] == [str(broken)]
    assert "not valid JSON" in report.skipped[0].reason
    assert report.kinds["inductor.best_config/1"] == 1 and report.kinds["triton.kernel/1"] == 87


# --------------------------------------------------------------------------- environments


def _local_env() -> atpack.Environment:
    return LocalEnvironment().snapshot()


def _pack_of_every_kind(pack: Path, environment: atpack.Environment) -> Path:
    """A pack whose artifacts record `environment`, written as such (collection would check it
    against what a kernel's own metadata says)."""
    with atpack.create(pack) as writer:
        env = writer.add_environment(environment)
        files = [("kernel_0.json", b'{"name": "kernel_0"}'), ("kernel_0.cubin", b"elf")]
        for name, data in files:
            writer.add_blob(data, hint=os.path.splitext(name)[1])
        for artifact in (
            packs.triton_kernel(env, 0, files),
            packs.triton_autotune(env, 0),
            packs.gemm_timings(env, 0),
            packs.best_config(env, 0),
        ):
            writer.add(artifact)
    return pack


def test_artifacts_from_another_environment_are_skipped_naming_the_field(tmp_path: Path) -> None:
    here = _local_env()
    elsewhere = msgspec.structs.replace(here, triton_version="3.2.0", triton_key=None)  # no key: the version decides
    report = _populate(_pack_of_every_kind(tmp_path / "p.atpack", elsewhere), tmp_path / "out")
    by_kind = {o.kind: o for o in report.outcomes}
    for kind in ("triton.kernel/1", "triton.autotune/1", "inductor.gemm_timings/1"):
        assert by_kind[kind].action == "skipped"
        assert f"triton_version: recorded '3.2.0', found '{here.triton_version}'" in by_kind[kind].detail
    # .best_config files do not depend on the triton version: they apply here.
    assert by_kind["inductor.best_config/1"].action == "written"
    assert not (tmp_path / "out" / "triton").exists()


def test_populate_compares_releases_and_leaves_build_keys_to_the_caches_own_lookup(tmp_path: Path) -> None:
    """Populate compares what costs nothing to know (releases, the device); the build keys
    (`torch_key`, `triton_key`) are in the paths torch and Triton look artifacts up by, so an
    artifact of another build of the same release is written where no lookup finds it. A dry
    run computes the keys too, and names them."""
    here = _local_env()
    other_build = msgspec.structs.replace(here, torch_key="f" * 64, triton_key="3.9.0-not-this-build")
    pack = _pack_of_every_kind(tmp_path / "p.atpack", other_build)
    report = _populate(pack, tmp_path / "out")
    assert report.count("written") == len(report.outcomes) == 4, report.format()
    exact = _populate(pack, tmp_path / "dry", dry_run=True)
    best = next(o for o in exact.outcomes if o.kind == "inductor.best_config/1")
    assert best.action == "skipped" and best.detail.startswith("torch_key: recorded 'ffff")
    kernel = next(o for o in exact.outcomes if o.kind == "triton.kernel/1")
    assert kernel.action == "skipped" and "triton_key: recorded '3.9.0-not-this-build'" in kernel.detail
    relabelled = msgspec.structs.replace(here, torch_version=f"{here.torch_version}.post1")
    best = next(
        o
        for o in _populate(_pack_of_every_kind(tmp_path / "q.atpack", relabelled), tmp_path / "o2").outcomes
        if o.kind == "inductor.best_config/1"
    )
    assert best.action == "skipped" and best.detail.startswith(f"torch_version: recorded '{here.torch_version}.post1'")


def test_an_environment_that_does_not_record_the_release_vouches_for_nothing(tmp_path: Path) -> None:
    abi_only = atpack.Environment(python_abi=sys.implementation.cache_tag)
    report = _populate(_pack_of_every_kind(tmp_path / "p.atpack", abi_only), tmp_path / "out")
    assert report.count("skipped") == len(report.outcomes) == 4
    for outcome in report.outcomes:
        release = "torch_version" if outcome.kind.startswith("inductor.best") else "triton_version"
        assert f"{release}: not recorded, and this kind is valid only where it is" in outcome.detail
    assert not (tmp_path / "out" / "triton").exists() and not (tmp_path / "out" / "inductor").exists()


def test_the_h100_sample_is_skipped_here_with_every_differing_field(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    report = _populate(pack, tmp_path / "out")
    assert report.count("skipped") == len(report.outcomes) == 96
    kernel = next(o for o in report.outcomes if o.kind == "triton.kernel/1")
    assert "compute_capability: recorded '9.0', found none" in kernel.detail
    best = next(o for o in report.outcomes if o.kind == "inductor.best_config/1")
    assert "device_name: recorded 'NVIDIA H100 80GB HBM3', found none" in best.detail
    assert "skipped 87 triton.kernel/1: " in report.format()


def test_a_pack_for_two_machines_populates_the_matching_one(tmp_path: Path) -> None:
    here = _local_env()
    a100 = msgspec.structs.replace(here, device_name="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    path = "ab/" + "0" * 64 + ".best_config"
    with atpack.create(tmp_path / "two.atpack") as w:
        for env, block in ((here, 64), (a100, 128)):
            w.add(
                InductorBestConfig(
                    env=w.add_environment(env), path=path, kwargs=(("XBLOCK", block),), num_warps=4, num_stages=1
                )
            )
    report = _populate(tmp_path / "two.atpack", tmp_path / "out")
    actions = sorted((o.action, o.detail.split(";")[0]) for o in report.outcomes)
    assert actions == [
        ("skipped", "device_name: recorded 'NVIDIA A100-SXM4-80GB', found none"),
        ("written", f"wrote {path}"),
    ]
    assert json.loads((tmp_path / "out" / "inductor" / path).read_text())["XBLOCK"] == 64


def test_ignore_environment_writes_everything_and_says_so(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    report = _populate(pack, tmp_path / "out", ignore_environment=True, trust_pickles=True)
    assert report.count("written") == 96
    assert "OVERRIDDEN" in report.format()
    assert all("overridden" in o.detail for o in report.outcomes)


# --------------------------------------------------------------------------- what is already there


def test_populate_twice_changes_nothing(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    _populate(pack, tmp_path / "out", ignore_environment=True)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()}
    again = _populate(pack, tmp_path / "out", ignore_environment=True)
    assert again.count("present") == 94 and again.count("skipped") == 2 and again.bytes_read == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()} == before


def test_dry_run_writes_nothing_and_shows_the_plan(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    report = _populate(pack, tmp_path / "out", ignore_environment=True, dry_run=True)
    assert report.count("written") == 94
    assert "94 to be written" in report.format()
    assert not (tmp_path / "out").exists()


def test_existing_different_results_are_kept(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    best = next(a for a in atpack.open(pack).artifacts if isinstance(a, InductorBestConfig))
    mine = tmp_path / "out" / "inductor" / best.path
    mine.parent.mkdir(parents=True)
    mine.write_text('{"XBLOCK": 2, "num_warps": 1, "num_stages": 1}')
    report = _populate(pack, tmp_path / "out", ignore_environment=True)
    outcome = next(o for o in report.outcomes if o.key == best.path)
    assert outcome.action == "kept" and "differ" in outcome.detail
    assert mine.read_text() == '{"XBLOCK": 2, "num_warps": 1, "num_stages": 1}'


def test_gemm_timings_merge_into_a_newer_file_without_losing_anything(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    gemm = next(a for a in atpack.open(pack).artifacts if isinstance(a, InductorGemmTimings))
    target = tmp_path / "out" / "inductor" / "cache" / gemm.system.hash
    target.parent.mkdir(parents=True)
    first = gemm.entries[0]
    newer = {
        first.op: {first.inputs: {first.precision: {first.timings[0].choice: 123.0}}},
        "mm": {"my-layout": {"highest": {"my-choice": 0.5}}},
    }
    target.write_text(json.dumps({"system": {"hash": gemm.system.hash}, "cache": newer}, indent=4))
    report = _populate(pack, tmp_path / "out", ignore_environment=True)
    outcome = next(o for o in report.outcomes if o.kind == "inductor.gemm_timings/1")
    total = sum(len(e.timings) for e in gemm.entries)
    assert outcome.action == "merged" and outcome.detail.startswith(f"{total - 1} timings added")
    merged = json.loads(target.read_text())
    assert merged["system"] == {"hash": gemm.system.hash}
    assert merged["cache"][first.op][first.inputs][first.precision][first.timings[0].choice] == 123.0
    assert merged["cache"]["mm"] == {"my-layout": {"highest": {"my-choice": 0.5}}}
    for e in gemm.entries:
        assert {t.choice for t in e.timings} <= set(merged["cache"][e.op][e.inputs][e.precision])


def _populate_in_child(args: tuple[str, str, str]) -> int:
    pack, inductor_dir, triton_dir = args
    report = populate(pack, inductor_dir=inductor_dir, triton_dir=triton_dir, ignore_environment=True)
    return report.count("failed")


def _gemm_pack(path: Path, env: atpack.Environment, system_hash: str, choices: list[str]) -> None:
    with atpack.create(path) as w:
        fields = {
            "env": w.add_environment(env),
            "system": {"hash": system_hash},
            "entries": [{"op": "addmm", "inputs": "k", "precision": "highest", "timings": [[c, 0.1] for c in choices]}],
        }
        w.add(msgspec.convert(fields, InductorGemmTimings))


def test_racing_populates_leave_whole_files_and_lose_no_timings(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "p.atpack")
    env = h100_sample.environment
    gemm_packs = []
    for i in range(4):
        gemm_packs.append(tmp_path / f"gemm{i}.atpack")
        _gemm_pack(gemm_packs[-1], env, "f" * 64, [f"choice-{i}-{j}" for j in range(50)])
    out = tmp_path / "out"
    jobs = [(str(p), str(out / "inductor"), str(out / "triton")) for p in [pack] * 4 + gemm_packs]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        assert pool.map(_populate_in_child, jobs) == [0] * 8
    reference = tmp_path / "reference"
    _populate(pack, reference, ignore_environment=True)
    got, want = _tree(out / "triton"), _tree(reference / "triton")
    assert set(got) == set(want)
    assert all(got[p] == want[p].replace(str(reference).encode(), str(out).encode()) for p in want)
    assert not [p for p in out.rglob(".atpack-*")], "temporary files left behind"
    merged = json.loads((out / "inductor" / "cache" / ("f" * 64)).read_text())
    assert len(merged["cache"]["addmm"]["k"]["highest"]) == 200


class Recorder(Callback):  # type: ignore[misc]
    """An fsspec progress callback (what `TqdmCallback` is) that remembers each (value, size)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def call(self, *args: object, **kwargs: object) -> None:
        self.seen.append((self.value, self.size))


def test_populate_and_verify_report_progress_through_fsspec_callbacks(h100_sample: Sample, tmp_path: Path) -> None:
    pack = h100_sample.pack(tmp_path / "sample.atpack")
    read = Recorder()
    _populate(pack, tmp_path / "out", ignore_environment=True, trust_pickles=True, callback=read)
    with atpack.open(pack) as opened:
        blobs, frames = opened.blob_count, len(opened._frames)
        checked = Recorder()
        opened.verify(callback=checked)
    # the size first, then every blob the populate wrote read once (the sample's are all distinct);
    # every frame checked once
    assert read.seen == [(n, blobs) for n in range(blobs + 1)]
    assert checked.seen == [(n, frames) for n in range(frames + 1)]
