"""Inductor's local cache file holds more than GEMM timings, and all of it travels.

Beside the max-autotune GEMM timings (nested by op, inputs and precision), Inductor's
`LocalCache.set_value` records one value under one key in the same file, ``cache/<system
hash>``: the padding pass's benchmark times and decisions, the scheduler's fusion benchmark
times. On a GPU, a model compiled with max-autotune writes both (an H100 run of
tools/gpu_e2e.py found such a file). A pack carries them as `inductor.local_values/1` beside
`inductor.gemm_timings/1`; populate adds what is missing to the file, never changing a value
there; and torch's own readers, in a process of their own, find every value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import atpack
from atpack.collect import pack_caches
from atpack.env import LocalEnvironment
from atpack.populate import populate

WRITE = """
    import json
    from torch._inductor import codecache
    from torch._inductor.fx_passes import pad_mm
    pad_mm.set_cached_base_mm_benchmark_time("mm-time-key", 0.0123)
    pad_mm.set_cached_should_pad("should-pad-key", True)
    codecache.LocalCache().set_value("fusion-key", value=0.5)
    # a GEMM timing, nested op / inputs / precision / candidate as PersistentCache.lookup nests it
    timed = codecache.LocalCache().set_value("mm", "[[64, 64], [64, 64]]", "high", "triton_mm_1", value=0.01)
    print(json.dumps(str(codecache.LocalCache.get_local_cache_path())))
"""

READ = """
    import json
    from torch._inductor import codecache
    from torch._inductor.fx_passes import pad_mm
    print(json.dumps({
        "mm_time": pad_mm.get_cached_base_mm_benchmark_time("mm-time-key"),
        "should_pad": pad_mm.get_cached_should_pad("should-pad-key"),
        "fusion": codecache.LocalCache().lookup("fusion-key"),
        "mine": codecache.LocalCache().lookup("mine"),
    }))
"""


def _torch(code: str, inductor: Path) -> Any:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_value_torch_records_beside_the_gemm_timings_is_packed_and_read_back_by_torch(tmp_path: Path) -> None:
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    written = Path(_torch(WRITE, made))
    assert written.is_relative_to(made)
    pack = tmp_path / "p.atpack"
    pack_caches(pack, inductor_dir=str(made), sources=["inductor"])
    found = {a.kind: a for a in atpack.open(pack).artifacts}
    assert set(found) == {"inductor.gemm_timings/1", "inductor.local_values/1"}
    assert {(v.key, v.value) for v in found["inductor.local_values/1"].values} >= {
        ("mm-time-key", 0.0123),
        ("should-pad-key", True),
        ("fusion-key", 0.5),
    }

    # a file already there with a value of the user's own: kept, the pack's added beside it
    target = fresh / written.relative_to(made)
    target.parent.mkdir(parents=True)
    mine = {"system": json.loads(written.read_text())["system"], "cache": {"mine": 7.0, "fusion-key": 9.0}}
    target.write_text(json.dumps(mine, indent=4))
    report = populate(pack, inductor_dir=str(fresh), triton_dir=str(tmp_path / "t"), environment=LocalEnvironment())
    assert sorted((o.kind, o.action) for o in report.outcomes) == [
        ("inductor.gemm_timings/1", "merged"),
        ("inductor.local_values/1", "merged"),
    ], report.format(verbose=True)
    read = _torch(READ, fresh)
    assert read == {"mm_time": 0.0123, "should_pad": True, "fusion": 9.0, "mine": 7.0}  # the user's value kept


def test_a_local_cache_file_of_values_only_is_written_whole_where_none_is(tmp_path: Path) -> None:
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    _torch(WRITE.replace("timed = ", "# "), made)
    pack = tmp_path / "p.atpack"
    pack_caches(pack, inductor_dir=str(made), sources=["inductor"])
    assert [a.kind for a in atpack.open(pack).artifacts] == ["inductor.local_values/1"]
    report = populate(pack, inductor_dir=str(fresh), triton_dir=str(tmp_path / "t"), environment=LocalEnvironment())
    assert [o.action for o in report.outcomes] == ["written"]
    assert _torch(READ, fresh) == {"mm_time": 0.0123, "should_pad": True, "fusion": 0.5, "mine": None}
    made_file = next((made / "cache").iterdir())
    assert (fresh / "cache" / made_file.name).read_bytes() == made_file.read_bytes()  # torch's formatting
