"""A tuning result picks among the configs torch could have tuned; it never invents one.

Inductor hands a cached ``.best_config`` to the kernel as it is (a coordinate-descent result is
rebuilt from whatever names and values the file holds: an extra name reaches the kernel as an
argument), and Triton rebuilds every config of an ``.autotune.json``. So populate refuses, trusted
or not, a config outside what Inductor or Triton emits: a name Inductor never tunes, a block size
that is not a power of two or over Inductor's limit, warps, stages, CTAs or registers outside
Triton's ranges (a meta-parameter that is not a scalar does not even decode). Each case is one record of an otherwise
valid pack: that record is skipped or refused with its reason, nothing of it is written, and the
configs of a real H100 capture all pass.
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import msgspec
import pytest
from h100_sample import Sample
from test_hostile import Site
from test_trust_megacache import AUTOTUNE_KEY
from test_trust_megacache import Site as MegacacheSite

import atpack
from atpack.artifacts import TritonConfigTiming
from atpack.testing.packs import INDUCTOR_ENV, TRITON_ENV, best_config, pack_of, triton_autotune

GOOD = {"kwargs": (("XBLOCK", 128), ("R0_BLOCK", 8)), "num_warps": 4, "num_stages": 1}

INVENTED = {
    "a block size that is not a power of two": ({"kwargs": (("XBLOCK", 384),)}, "not a power of two"),
    "a block size over Inductor's limit": ({"kwargs": (("YBLOCK", 2048),)}, "outside 1..1024"),
    "a block size of zero": ({"kwargs": (("XBLOCK", 0),)}, "outside 1..8192"),
    "a block size that is a boolean": ({"kwargs": (("XBLOCK", True),)}, "not an integer"),
    "a block size that is a string": ({"kwargs": (("XBLOCK", "128"),)}, "not an integer"),
    "a kernel argument's name": ({"kwargs": (("XBLOCK", 128), ("xnumel", 1))}, "'xnumel', which Inductor never"),
    "a pointer argument's name": ({"kwargs": (("in_ptr0", 0),)}, "'in_ptr0', which Inductor never"),
    "1024 warps": ({"num_warps": 1024}, "'num_warps' is 1024, outside 1..32"),
    "3 warps": ({"num_warps": 3}, "'num_warps' is 3, not a power of two"),
    "99 stages": ({"num_stages": 99}, "'num_stages' is 99, outside 0..8"),
    "a key after the typed fields": ({"extra": (("xnumel", 7),)}, "'xnumel', which torch's .best_config never"),
}


def _best_config(**changes: Any) -> atpack.InductorBestConfig:
    return msgspec.structs.replace(best_config(INDUCTOR_ENV.digest, 0), **{**GOOD, **changes})


@pytest.mark.parametrize("changes, reason", INVENTED.values(), ids=INVENTED.keys())
def test_a_best_config_inductor_never_emits_is_skipped_and_not_written(
    tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    site = Site(tmp_path)
    invented, honest = _best_config(**changes), best_config(INDUCTOR_ENV.digest, 1)
    report = site.populate(pack_of(invented, honest), trust_pickles=True)
    outcome = {o.key: o for o in report.outcomes}
    assert outcome[invented.path].action == "skipped", report.format(verbose=True)
    assert "not a config Inductor emits" in outcome[invented.path].detail
    assert reason in outcome[invented.path].detail, outcome[invented.path].detail
    assert not (site.inductor / invented.path).exists()
    assert outcome[honest.path].action == "written" and (site.inductor / honest.path).is_file()


def test_inductors_own_names_and_ranges_pass(tmp_path: Path) -> None:
    names = (("XBLOCK_0", 1024), ("YBLOCK", 1024), ("R0_BLOCK", 65536), ("RSPLIT", 64), ("NUM_STAGES", 3))
    site = Site(tmp_path)
    fine = _best_config(kwargs=names, num_warps=32, num_stages=8)
    report = site.populate(pack_of(fine))
    assert [o.action for o in report.outcomes] == ["written"], report.format(verbose=True)


@pytest.mark.parametrize("changes, reason", INVENTED.values(), ids=INVENTED.keys())
def test_a_megacache_autotune_entry_inductor_never_emits_is_refused(
    tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    data = atpack.adapters.inductor.render_best_config(_best_config(**changes))
    site = MegacacheSite(tmp_path)
    site.refuses(("autotune", AUTOTUNE_KEY, data), match=reason)


TRITON_INVENTED = {
    "1024 warps": ({"num_warps": 1024}, "'num_warps' is 1024"),
    "99 stages": ({"num_stages": 99}, "'num_stages' is 99"),
    "3 CTAs": ({"num_ctas": 3}, "'num_ctas' is 3, not a power of two"),
    "1000 registers": ({"maxnreg": 1000}, "'maxnreg' is 1000"),
    # Triton's JIT takes a keyword that is not a kernel parameter as an option of its compiler
    "ptxas options": ({"kwargs": (("BLOCK", 64), ("ptx_options", "/tmp/evil.ptx"))}, "'ptx_options', an option of"),
    "libraries to link": ({"kwargs": (("extern_libs", "libdevice"),)}, "'extern_libs', an option of"),
    "another target": ({"kwargs": (("arch", "sm_80"),)}, "'arch', an option of"),
    "other numerics": ({"kwargs": (("default_dot_input_precision", "tf32"),)}, "'default_dot_input_precision'"),
    "JIT's own keyword": ({"kwargs": (("grid", 1),)}, "'grid', an option of"),
    "an AMD option out of range": ({"kwargs": (("waves_per_eu", 99),)}, "'waves_per_eu' is 99"),
}


@pytest.mark.parametrize("changes, reason", TRITON_INVENTED.values(), ids=TRITON_INVENTED.keys())
def test_a_triton_autotune_config_triton_never_runs_is_skipped_and_not_written(
    tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    site = Site(tmp_path)
    honest = triton_autotune(TRITON_ENV.digest, 0)
    config = msgspec.structs.replace(honest.configs_timings[1].config, **changes)
    invented = msgspec.structs.replace(
        triton_autotune(TRITON_ENV.digest, 1),
        configs_timings=(honest.configs_timings[0], TritonConfigTiming(config, (0.01,))),
    )
    report = site.populate(pack_of(invented, honest))
    outcome = {o.key: o for o in report.outcomes}
    assert outcome[invented.key].action == "skipped", report.format(verbose=True)
    assert "not a config Triton runs" in outcome[invented.key].detail and reason in outcome[invented.key].detail
    assert not (site.triton / invented.cache_key).exists()
    assert outcome[honest.key].action == "written"


def test_a_user_kernels_own_names_and_amds_tuning_options_pass(tmp_path: Path) -> None:
    kwargs = (("BLOCK_SIZE", 1024), ("ACTIVATION", "relu"), ("waves_per_eu", 2), ("matrix_instr_nonkdim", 16))
    honest = triton_autotune(TRITON_ENV.digest, 0)
    config = msgspec.structs.replace(honest.configs_timings[0].config, kwargs=kwargs)
    tuned = msgspec.structs.replace(honest, configs_timings=(TritonConfigTiming(config, (0.01,)),))
    report = Site(tmp_path).populate(pack_of(tuned))
    assert [o.action for o in report.outcomes] == ["written"], report.format(verbose=True)


def test_every_compile_option_of_the_installed_triton_is_refused_as_a_meta_parameter() -> None:
    """The list is Triton 3.4-3.9's; a release that adds an option fails here first."""
    import dataclasses
    import inspect

    from triton.runtime.jit import JITFunction

    from atpack.adapters.configs import TRITON_OPTIONS

    backends = [("nvidia", "CUDAOptions"), ("amd", "HIPOptions")]
    options = set()
    for backend, name in backends:
        module = pytest.importorskip(f"triton.backends.{backend}.compiler")
        options |= {f.name for f in dataclasses.fields(getattr(module, name))}
    keywords = {p.name for p in inspect.signature(JITFunction.run).parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert options | keywords <= TRITON_OPTIONS, sorted((options | keywords) - TRITON_OPTIONS)


def test_every_config_of_a_real_h100_capture_passes(
    tmp_path: Path, h100_sample: Sample, h100_sample_root: Path
) -> None:
    blob = lzma.decompress((h100_sample_root / "megacache.bin.xz").read_bytes())
    pack = h100_sample.pack(tmp_path / "sample.atpack", megacache=blob)
    report = Site(tmp_path).populate(pack, trust_pickles=True)
    assert [o for o in report.outcomes if "not a config" in o.detail] == []
    tuned = {o.kind for o in report.outcomes if o.action in ("written", "present")}
    assert {"inductor.best_config/1", "megacache.autotune/1", "triton.autotune/1"} <= tuned, report.format()
