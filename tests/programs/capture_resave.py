"""Torch's saves of a kernel's `.best_config` inside `atpack.capture()`, in the order a warm
start leaves them: autotuning's winner, coordinate descent's result, then the same result
saved again by a re-run of autotuning (which drops the coordinate-descent mark).

    python capture_resave.py KERNEL.py PACK
Prints JSON: the record the file holds at the end, and the one the pack holds.
Uses $TORCHINDUCTOR_CACHE_DIR.
"""

from __future__ import annotations

import json
import os
import sys

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402
from torch._inductor.runtime.triton_heuristics import hash_configs  # noqa: E402
from triton import Config  # noqa: E402

import atpack  # noqa: E402
from atpack.artifacts import InductorBestConfig  # noqa: E402

with open(sys.argv[1]) as f:
    source = f.read()
with atpack.capture() as cap:
    module = PyCodeCache.load(source)
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    cache = AutotuneCache.create(kernel.inductor_meta, module.__file__, hash_configs(kernel.configs))
    heuristic = kernel.configs[0]
    searched = Config(dict(heuristic.kwargs), num_warps=heuristic.num_warps * 2, num_stages=heuristic.num_stages)
    cache.save(heuristic, 2_000_000)
    cache.save(searched, 9_000_000, found_by_coordesc=True)
    again = Config(dict(searched.kwargs), num_warps=searched.num_warps, num_stages=searched.num_stages)
    again.found_by_coordesc = True  # the launcher's config, as torch marks it on a hit
    cache.save(again, 7_000_000)
cap.save(sys.argv[2])
path = cache.local_cache[1]
with open(path) as f:
    on_disk = json.load(f)
relative = os.path.relpath(path, os.environ["TORCHINDUCTOR_CACHE_DIR"])
(packed,) = [a for a in atpack.open(sys.argv[2]).artifacts if isinstance(a, InductorBestConfig) and a.path == relative]
print(
    json.dumps(
        {
            "file": {"num_warps": on_disk["num_warps"], "found_by_coordesc": on_disk["found_by_coordesc"]},
            "pack": {"num_warps": packed.num_warps, "found_by_coordesc": packed.found_by_coordesc},
            "searched_num_warps": searched.num_warps,
            "notes": cap.notes,
        }
    )
)
