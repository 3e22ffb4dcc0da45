"""Data kinds never place code, and what is reviewed is what is written.

A pack from the network is hostile input. Every kind populate writes without trust names only
files that hold data (a compiled kernel's metadata, IR and binary: never a native module, a
Python file or a pickle), and no free-form field (``extra``, kwargs) repeats a name or shadows
a typed field: a pack that breaks a rule does not open (a one-line `FormatError` naming the
artifact and the field), so `atpack inspect`, `report`, `diff` and `merge` show exactly the
bytes populate writes. A kernel's metadata must name the kernel. A kernel folder that Triton
already loads (it has a group file) is never changed through its group file. JSON nested too
deeply for Python's parser is a one-line typed error, in a pack or in a cache file.

Each attack is built here, with the surgery of `atpack.testing.packs` where the writer would
refuse the pack; every test checks that the site (cache folders with results in them, and a
folder outside) is unchanged, byte for byte.
"""

from __future__ import annotations

import json
import os
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest
from h100_sample import Sample
from test_hostile import Site, with_artifact

import atpack
from atpack.artifacts import MAX_EXTRA_DEPTH, KernelFile, TritonAutotune, TritonHostModule, TritonKernel
from atpack.collect import pack_caches
from atpack.digest import canonical, digest_bytes
from atpack.populate import PopulateReport
from atpack.testing.packs import (
    INDUCTOR_ENV,
    TRITON_ENV,
    best_config,
    gemm_timings,
    pack_of,
    rewrite_index,
    sort_artifacts,
    triton_autotune,
    triton_kernel,
)

CUDA_UTILS_KEY = "XU5DT2AO5BD5AEHEYGLPP5LRDFHHCUEJT4LGDVLB4STXUGVGHFPA"
"""The folder of Triton's compiled CUDA utilities in the H100 sample: Triton loads
``<cache>/<key>/cuda_utils<EXT_SUFFIX>`` from it as a native module (`triton.runtime.build`)."""

DEEP = 10_000
"""More nested arrays than Python's (and msgspec's) recursive JSON code can follow."""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def refused_when_opened(site: Site, data: bytes, *needles: str) -> None:
    """Populating `data` raises a one-line `FormatError` containing every needle, before anything
    is written; `atpack.open` (what inspect, report, diff and merge read with) refuses it too."""
    before = site.snapshot()
    path = site.put(data)
    with pytest.raises(atpack.FormatError) as raised:
        site.populate(path)
    assert site.snapshot() == before, "populate wrote something"
    message = str(raised.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    with pytest.raises(atpack.FormatError):
        atpack.open(path)


def failed_when_populated(site: Site, data: bytes, error: type[atpack.AtpackError], needle: str) -> PopulateReport:
    """Populating `data` fails its one kernel with `error` (one line, containing `needle`) and
    writes nothing."""
    report = site.refuses_artifacts(data, error.__name__, needle)
    (failed,) = [o for o in report.outcomes if o.action == "failed"]
    assert "\n" not in failed.detail, failed.detail
    return report


# =========================================================================== data kinds hold data only

META = b'{"name": "cuda_utils", "num_warps": 4}'


@pytest.mark.parametrize(
    "name",
    [
        f"cuda_utils{sysconfig.get_config_var('EXT_SUFFIX')}",  # what Triton's build loads from this folder
        "cuda_utils.so",
        "cuda_utils.py",
        "cuda_utils.pkl",
        "cuda_utils.pt",
        "cuda_utils.json.so",
    ],
)
def test_a_kernel_placing_host_code_at_tritons_cuda_utils_key_does_not_open(site: Site, name: str) -> None:
    code = b"\x7fELF not really, but loaded as one"
    kernel = TritonKernel(
        env=TRITON_ENV.digest,
        cache_key=CUDA_UTILS_KEY,
        name="cuda_utils",
        files=(KernelFile("cuda_utils.json", digest_bytes(META), len(META)),),
    )
    data = with_artifact(
        pack_of(kernel, blobs=(META, code)),
        "triton.kernel/1",
        lambda a: a["files"].append([name, digest_bytes(code), len(code)]),
    )
    refused_when_opened(site, data, "triton.kernel/1", "files:", f"{name!r} is not a file Triton's compiler writes")
    assert not (site.triton / CUDA_UTILS_KEY).exists()


def test_a_kernel_file_named_after_another_kernel_does_not_open(site: Site) -> None:
    # the group file of kernel_0 would list it, but Triton would read it as another kernel's
    meta, other = b'{"name": "kernel_0"}', b'{"name": "kernel_1"}'
    data = with_artifact(
        pack_of(triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta)]), blobs=(meta, other)),
        "triton.kernel/1",
        lambda a: a["files"].append(["kernel_1.json", digest_bytes(other), len(other)]),
    )
    refused_when_opened(site, data, "'kernel_1.json' is not a file Triton's compiler writes for kernel 'kernel_0'")


def test_a_kernel_without_its_metadata_file_does_not_open(site: Site) -> None:
    meta, binary = b'{"name": "kernel_0"}', b"cubin"
    kernel = triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta), ("kernel_0.cubin", binary)])
    data = with_artifact(pack_of(kernel, blobs=(meta, binary)), "triton.kernel/1", lambda a: a["files"].pop(0))
    refused_when_opened(site, data, "files: the kernel's metadata kernel_0.json is missing")


def test_a_host_module_file_that_is_not_a_native_module_does_not_open(site: Site) -> None:
    code = b"import os  # run at import"
    module = TritonHostModule(
        env=TRITON_ENV.digest, cache_key=CUDA_UTILS_KEY, files=(KernelFile("cuda_utils.so", digest_bytes(code), 26),)
    )
    data = with_artifact(
        pack_of(module, blobs=(code,)),
        "triton.host_module/1",
        lambda a: a["files"][0].__setitem__(0, "cuda_utils.py"),
    )
    before = site.snapshot()
    with pytest.raises(atpack.FormatError, match=r"'cuda_utils\.py' is not a native module") as raised:
        site.populate(data, trust_pickles=True)
    assert "\n" not in str(raised.value) and site.snapshot() == before


# =========================================================================== no field shadows another

SHADOWS: dict[str, tuple[Callable[[], atpack.Artifact], Callable[[dict[str, Any]], None], str]] = {
    # id: (artifact, change, what the error names)
    "best_config extra holding num_warps": (
        lambda: best_config(INDUCTOR_ENV.digest, 0),
        lambda a: a.update(extra=[["num_warps", 32]]),
        "extra: 'num_warps' would shadow another key",
    ),
    "best_config extra holding configs_hash": (
        lambda: best_config(INDUCTOR_ENV.digest, 0),
        lambda a: a.update(extra=[["configs_hash", "0" * 64]]),
        "extra: 'configs_hash' would shadow another key",
    ),
    "best_config kwargs holding num_stages": (
        lambda: best_config(INDUCTOR_ENV.digest, 0),
        lambda a: a["kwargs"].append(["num_stages", 9]),
        "kwargs: 'num_stages' would shadow another key",
    ),
    "best_config extra holding a kwargs name": (
        lambda: best_config(INDUCTOR_ENV.digest, 0),
        lambda a: a.update(extra=[["XBLOCK", 1]]),
        "extra: 'XBLOCK' would shadow another key",
    ),
    "autotune extra holding key": (
        lambda: triton_autotune(TRITON_ENV.digest, 0),
        lambda a: a.update(extra=[["key", [1]]]),
        "extra: 'key' would shadow another key",
    ),
    "autotune extra holding configs_timings": (
        lambda: triton_autotune(TRITON_ENV.digest, 0),
        lambda a: a.update(extra=[["configs_timings", []]]),
        "extra: 'configs_timings' would shadow another key",
    ),
    "autotune config extra holding kwargs": (
        lambda: triton_autotune(TRITON_ENV.digest, 0),
        lambda a: a["configs_timings"][0][0].update(extra=[["kwargs", {"BLOCK": 1}]]),
        "configs_timings[0].config.extra: 'kwargs' may not be here",
    ),
    "autotune config extra holding num_warps": (
        lambda: triton_autotune(TRITON_ENV.digest, 0),
        lambda a: a["configs_timings"][1][0].update(extra=[["num_warps", 1]]),
        "configs_timings[1].config.extra: 'num_warps' may not be here",
    ),
    "autotune config kwargs holding num_warps": (
        lambda: triton_autotune(TRITON_ENV.digest, 0),
        lambda a: a["configs_timings"][0][0]["kwargs"].append(["num_warps", 1]),
        "configs_timings[0].config.kwargs: 'num_warps' would shadow the option Triton launches with",
    ),
    "autotune config holding an unknown attribute": (
        lambda: triton_autotune(TRITON_ENV.digest, 0),
        lambda a: a["configs_timings"][0][0].update(extra=[["launch_hook", None]]),
        "configs_timings[0].config.extra: 'launch_hook' may not be here",
    ),
}


@pytest.mark.parametrize("case", list(SHADOWS))
def test_a_free_form_field_shadowing_a_typed_one_does_not_open(site: Site, case: str) -> None:
    make, change, needle = SHADOWS[case]
    artifact = make()
    refused_when_opened(site, with_artifact(pack_of(artifact), artifact.kind, change), artifact.kind, needle)


# =========================================================================== nothing listed twice

KERNEL_0_META = b'{"name": "kernel_0"}'
DUPLICATES: dict[str, tuple[Callable[[], tuple[atpack.Artifact, tuple[bytes, ...]]], Callable[[Any], None], str]] = {
    "best_config kwargs key twice": (
        lambda: (best_config(INDUCTOR_ENV.digest, 0), ()),
        lambda a: a["kwargs"].append(["XBLOCK", 4096]),
        "kwargs: 'XBLOCK' is listed twice",
    ),
    "best_config extra key twice": (
        lambda: (best_config(INDUCTOR_ENV.digest, 0), ()),
        lambda a: a.update(extra=[["extra_options", {"a": 1}], ["extra_options", {"a": 2}]]),
        "extra: 'extra_options' is listed twice",
    ),
    "autotune extra key twice": (
        lambda: (triton_autotune(TRITON_ENV.digest, 0), ()),
        lambda a: a.update(extra=[["note", 1], ["note", 2]]),
        "extra: 'note' is listed twice",
    ),
    "autotune config kwargs key twice": (
        lambda: (triton_autotune(TRITON_ENV.digest, 0), ()),
        lambda a: a["configs_timings"][0][0]["kwargs"].append(["BLOCK", 4096]),
        "configs_timings[0].config.kwargs: 'BLOCK' is listed twice",
    ),
    "GEMM candidate timed twice": (
        lambda: (gemm_timings(TRITON_ENV.digest, 0), ()),
        lambda a: a["entries"][0]["timings"].append(["triton_mm_1", 99.0]),
        "candidate 'triton_mm_1' of the GEMM ('mm', '[[1024, 512], [512, 256]]', 'high') is listed twice",
    ),
    "GEMM listed twice": (
        lambda: (gemm_timings(TRITON_ENV.digest, 0), ()),
        lambda a: a["entries"].append({**a["entries"][0], "timings": [["triton_mm_2", 0.5]]}),
        "the GEMM ('mm', '[[1024, 512], [512, 256]]', 'high') is listed twice",
    ),
    "kernel file twice": (
        lambda: (triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", KERNEL_0_META)]), (KERNEL_0_META,)),
        lambda a: a["files"].append(list(a["files"][0])),
        "files: 'kernel_0.json' is listed twice",
    ),
    "kernel group naming a file twice": (
        lambda: (triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", KERNEL_0_META)]), (KERNEL_0_META,)),
        lambda a: a.update(group=["kernel_0.json", "kernel_0.json"]),
        "group: 'kernel_0.json' is listed twice",
    ),
    "kernel group naming a file it does not have": (
        lambda: (triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", KERNEL_0_META)]), (KERNEL_0_META,)),
        lambda a: a.update(group=["kernel_0.json", "kernel_0.cubin"]),
        "group: 'kernel_0.cubin' is not one of the kernel's files",
    ),
    "host module file twice": (
        lambda: (
            TritonHostModule(
                env=TRITON_ENV.digest, cache_key=CUDA_UTILS_KEY, files=(KernelFile("a.so", digest_bytes(b"elf"), 3),)
            ),
            (b"elf",),
        ),
        lambda a: a["files"].append(list(a["files"][0])),
        "files: 'a.so' is listed twice",
    ),
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_a_name_listed_twice_does_not_open(site: Site, case: str) -> None:
    make, change, needle = DUPLICATES[case]
    artifact, blobs = make()
    refused_when_opened(
        site, with_artifact(pack_of(artifact, blobs=blobs), artifact.kind, change), artifact.kind, needle
    )


# =========================================================================== autotune configs add no code


@pytest.mark.parametrize(
    "attribute, value",
    [("pre_hook", "os.system"), ("pre_hook", {"__reduce__": "os.system"}), ("ir_override", "/tmp/evil.ptx")],
)
def test_an_autotune_config_with_a_pre_hook_or_an_ir_override_does_not_open(
    site: Site, attribute: str, value: Any
) -> None:
    # Triton rebuilds each config with Config(**config_dict): a pre_hook is called before each
    # launch, an ir_override is a file of IR compiled in place of the kernel's own
    autotune = triton_autotune(TRITON_ENV.digest, 0)

    def hook(a: dict[str, Any]) -> None:
        a["configs_timings"][0][0]["extra"] = [[attribute, value]]

    data = with_artifact(pack_of(autotune), autotune.kind, hook)
    refused_when_opened(site, data, "triton.autotune/1", f"'{attribute}' must be null")


def test_an_autotune_config_as_triton_writes_it_round_trips_with_its_null_attributes(site: Site) -> None:
    # Triton 3.4+ writes config.__dict__, with pre_hook and ir_override null: those are kept
    raw = (
        b'{"key": [1024], "configs_timings": [[{"kwargs": {"BLOCK": 256}, "num_warps": 4, "num_ctas": 1, '
        b'"num_stages": 3, "maxnreg": null, "pre_hook": null, "ir_override": null}, [0.5, 0.4, 0.6]]]}'
    )
    folder = site.root / "made" / ("A" * 52)
    folder.mkdir(parents=True)
    (folder / "scale_add.autotune.json").write_bytes(raw)
    report = pack_caches(site.packs / "p.atpack", triton_dir=str(folder.parent), sources=["triton"])
    assert not report.skipped
    site.populate(site.packs / "p.atpack")
    assert (site.triton / ("A" * 52) / "scale_add.autotune.json").read_bytes() == raw


# =========================================================================== a kernel's metadata names it


def test_a_kernel_whose_metadata_names_another_kernel_is_refused_before_any_file_is_written(site: Site) -> None:
    # Triton loads the function the metadata names from the binary: kernel_0's folder would run
    # another kernel
    meta, binary = b'{"name": "other_kernel", "num_warps": 4}', b"cubin"
    data = pack_of(
        triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta), ("kernel_0.cubin", binary)]),
        blobs=(meta, binary),
    )
    failed_when_populated(site, data, atpack.UnsafeContentError, "the metadata names kernel 'other_kernel'")


@pytest.mark.parametrize(
    "meta, needle",
    [
        (b"not json", "not valid JSON"),
        (b'["kernel_0"]', "kernel metadata is a JSON list, not an object"),
        (b"[" * DEEP + b"]" * DEEP, "JSON nested too deeply to read"),
    ],
    ids=["not JSON", "a list", "nested too deeply"],
)
def test_a_kernel_whose_metadata_is_not_a_json_object_is_refused(site: Site, meta: bytes, needle: str) -> None:
    data = pack_of(triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta)]), blobs=(meta,))
    failed_when_populated(site, data, atpack.CacheFileError, needle)


def test_a_kernel_named_after_tritons_150_character_file_name_may_have_metadata_with_the_full_name(
    site: Site,
) -> None:
    # Triton names a kernel's files after the first 150 characters of its name
    full = "k" * 160
    meta = json.dumps({"name": full}).encode()
    short = "k" * 150
    kernel = msgspec.structs.replace(
        triton_kernel(TRITON_ENV.digest, 0, [("kernel_0.json", meta)]),
        name=short,
        files=(KernelFile(f"{short}.json", digest_bytes(meta), len(meta)),),
    )
    report = site.populate(pack_of(kernel, blobs=(meta,)))
    assert [o.action for o in report.outcomes] == ["written"]
    assert (site.triton / kernel.cache_key / f"{short}.json").read_bytes() == meta


# =========================================================================== group files replace nothing


def kernel_pack(files: list[tuple[str, bytes]], group: list[str] | None = None) -> tuple[bytes, TritonKernel]:
    kernel = triton_kernel(TRITON_ENV.digest, 0, files)
    if group is not None:
        kernel = msgspec.structs.replace(kernel, group=tuple(group))
    return pack_of(kernel, blobs=tuple(data for _, data in files)), kernel


JSON, CUBIN = ("kernel_0.json", KERNEL_0_META), ("kernel_0.cubin", b"the binary Triton loads")


@pytest.fixture
def loaded_kernel(site: Site) -> TritonKernel:
    """A kernel folder as Triton leaves it (metadata, binary, group file naming both): here,
    populated from a pack, so that its group names this site's paths."""
    data, kernel = kernel_pack([JSON, CUBIN])
    assert [o.action for o in site.populate(data).outcomes] == ["written"]
    return kernel


def tritons_group(site: Site, kernel: TritonKernel) -> dict[str, str] | None:
    """What Triton's own cache manager finds for the kernel in the site (its read path)."""
    from triton.runtime.cache import FileCacheManager

    with mock.patch.dict(os.environ, {"TRITON_CACHE_DIR": str(site.triton)}):
        group: dict[str, str] | None = FileCacheManager(kernel.cache_key).get_group(f"{kernel.name}.json")
    return group


ATTACKS = {
    # id: (files, group) of the hostile pack: same key and name as the loaded kernel
    "adding a file to the group": ([JSON, CUBIN, ("kernel_0.ptx", b"ptx")], None),
    "a group without the binary": ([JSON, CUBIN], ["kernel_0.json"]),
    "a group listing a new binary": ([JSON, ("kernel_0.hsaco", b"another binary")], None),
    "a different binary": ([JSON, ("kernel_0.cubin", b"another binary")], None),
    "a different metadata": ([("kernel_0.json", b'{"name": "kernel_0", "shared": 1}'), CUBIN], None),
}


@pytest.mark.parametrize("case", list(ATTACKS))
def test_a_kernel_folder_triton_loads_is_never_changed_through_its_group_file(
    site: Site, loaded_kernel: TritonKernel, case: str
) -> None:
    files, group = ATTACKS[case]
    data, kernel = kernel_pack(files, group)
    loaded = tritons_group(site, loaded_kernel)
    assert loaded is not None and sorted(loaded) == ["kernel_0.cubin", "kernel_0.json"]
    before = site.snapshot()
    report = site.populate(data)
    assert site.snapshot() == before, "populate changed the kernel folder"
    (outcome,) = report.outcomes
    assert outcome.action == "kept" and outcome.detail.startswith("kept"), outcome
    assert tritons_group(site, kernel) == loaded


def test_a_moved_kernel_folder_gets_its_group_paths_repaired_and_nothing_else(
    site: Site, loaded_kernel: TritonKernel
) -> None:
    folder = site.triton / loaded_kernel.cache_key
    group = folder / "__grp__kernel_0.json"
    repaired = group.read_bytes()
    group.write_bytes(repaired.replace(str(site.triton).encode(), b"/where/it/was/made"))  # as a copied folder has
    assert tritons_group(site, loaded_kernel) is None  # Triton ignores a group whose paths are missing
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    data, _ = kernel_pack([JSON, CUBIN])
    (outcome,) = site.populate(data).outcomes
    assert outcome.action == "written" and outcome.detail.startswith(f"wrote {folder.name}/{group.name}")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {**before, group.name: repaired}
    assert tritons_group(site, loaded_kernel) == {n: str(folder / n) for n in ("kernel_0.json", "kernel_0.cubin")}
    assert [o.action for o in site.populate(data).outcomes] == ["present"]


def test_a_kernel_folder_missing_only_its_group_file_is_completed(site: Site) -> None:
    # what a populate killed before its last step leaves: the files, no group yet
    data, kernel = kernel_pack([JSON, CUBIN])
    folder = site.triton / kernel.cache_key
    folder.mkdir()
    for name, content in (JSON, CUBIN):
        (folder / name).write_bytes(content)
    (outcome,) = site.populate(data).outcomes
    assert outcome.action == "written" and sorted(tritons_group(site, kernel) or {}) == [CUBIN[0], JSON[0]]


# =========================================================================== JSON nested too deeply


def deep_best_config_pack(depth: int) -> bytes:
    """A pack of one best_config whose extra field nests `depth` arrays (built as text: no
    JSON encoder can write it)."""
    artifact = best_config(INDUCTOR_ENV.digest, 0)
    placeholder = msgspec.structs.replace(artifact, extra=(("deep", "PLACEHOLDER"),))
    raw = canonical(placeholder).replace(b'"PLACEHOLDER"', b"[" * depth + b"]" * depth)

    def plant(index: dict[str, Any]) -> None:
        index["artifacts"] = [raw]
        sort_artifacts(index)

    return rewrite_index(pack_of(artifact), plant)


def test_an_extra_field_nested_ten_thousand_deep_in_the_index_does_not_open(site: Site) -> None:
    refused_when_opened(site, deep_best_config_pack(DEEP), "JSON nested too deeply to read")


def test_an_extra_field_nested_deeper_than_the_limit_does_not_open(site: Site) -> None:
    data = deep_best_config_pack(MAX_EXTRA_DEPTH + 1)
    refused_when_opened(site, data, "inductor.best_config/1", f"extra: 'deep' nests deeper than {MAX_EXTRA_DEPTH}")
    report = site.populate(deep_best_config_pack(MAX_EXTRA_DEPTH))  # the limit itself opens...
    # ...and is then skipped as no config torch writes (tests/test_trust_configs.py), not refused as too deep
    assert [o.action for o in report.outcomes] == ["skipped"]
    assert "'deep', which torch's .best_config never holds" in report.outcomes[0].detail


@pytest.mark.parametrize("depth, needle", [(DEEP, "JSON nested too deeply to read"), (100, "nests deeper than 32")])
def test_a_collected_best_config_nested_too_deeply_is_skipped_with_a_one_line_reason(
    tmp_path: Path, depth: int, needle: str
) -> None:
    inductor = tmp_path / "inductor"
    fine, deep = best_config(INDUCTOR_ENV.digest, 0), best_config(INDUCTOR_ENV.digest, 1)
    for artifact, extra in ((fine, b""), (deep, b', "extra_options": ' + b"[" * depth + b"]" * depth)):
        path = inductor / artifact.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'{"XBLOCK": 64, "num_warps": 4, "num_stages": 1' + extra + b"}")
    report = pack_caches(tmp_path / "p.atpack", inductor_dir=str(inductor), sources=["inductor"])
    assert report.kinds["inductor.best_config/1"] == 1
    (skipped,) = report.skipped
    assert skipped.path == str(inductor / deep.path) and needle in skipped.reason and "\n" not in skipped.reason


def test_a_gemm_timing_file_nested_too_deeply_is_left_as_it_is(site: Site) -> None:
    artifact = gemm_timings(TRITON_ENV.digest, 0)
    target = site.inductor / "cache" / artifact.system.hash
    target.parent.mkdir()
    deep = b'{"system": {}, "cache": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    target.write_bytes(deep)
    before = site.snapshot()
    (outcome,) = site.populate(pack_of(artifact)).outcomes
    assert (outcome.action, outcome.error) == ("failed", "CacheFileError")
    assert "JSON nested too deeply to read" in outcome.detail and "\n" not in outcome.detail
    after = site.snapshot()
    assert [p for p in after if p not in before] == [  # only the lock file populate merged under
        "caches/inductor/locks",
        f"caches/inductor/locks/{artifact.system.hash}.atpack.lock",
    ]
    assert {p: after[p] for p in before} == before


# =========================================================================== the real sample passes


def test_the_real_sample_passes_every_check_and_keeps_tritons_null_config_attributes(
    h100_sample: Sample, tmp_path: Path
) -> None:
    with atpack.open(h100_sample.pack(tmp_path / "p.atpack", with_ir=True)) as pack:
        autotunes = [a for a in pack.artifacts if isinstance(a, TritonAutotune)]
        kernels = [a for a in pack.artifacts if isinstance(a, TritonKernel)]
        assert len(autotunes) == 2 and len(kernels) == 87
        for a in autotunes:
            assert {ct.config.extra for ct in a.configs_timings} == {(("pre_hook", None), ("ir_override", None))}
        for k in kernels:
            assert sorted(os.path.splitext(f.name)[1] for f in k.files) == sorted(
                [".json", ".source", ".ttir", ".ttgir", ".llir", ".ptx", ".cubin"]
            )
