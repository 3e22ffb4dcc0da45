"""Inductor's autotune-cache check (`check_autotune_cache`, the one its kernel decorator and its
FX-graph-cache restore both call) on a kernel whose candidates hash differently from the list
its `.best_config` was saved under, as a kernel restored from the FX graph cache does (it hashes
the configs it was compiled with): does the record still answer?

    python recorded_config.py KERNEL.py [--replay]
Prints JSON, one entry per record: the cache state torch reports and the config it returns.
With --replay, atpack's replay (atpack.coordesc.install) is on. Uses $TORCHINDUCTOR_CACHE_DIR.
"""

from __future__ import annotations

import json
import sys

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime import triton_heuristics  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402
from triton import Config  # noqa: E402

import atpack.coordesc  # noqa: E402

with open(sys.argv[1]) as f:
    source = f.read()
module = PyCodeCache.load(source)
kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
saved_under, meta = list(kernel.configs), kernel.inductor_meta
compiled = saved_under[:-1]  # one candidate dropped on the way, as a pruned compile does
if "--replay" in sys.argv:
    assert atpack.coordesc.install()


def describe(config: Config) -> dict[str, object]:
    return {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}


searched = Config(dict(saved_under[0].kwargs), num_warps=saved_under[0].num_warps * 2, num_stages=1)
records = {
    "coordesc result": (searched, True),
    "heuristic winner compiled": (compiled[0], False),
    "heuristic winner dropped": (saved_under[-1], False),
}
out = {}
for name, (winner, by_coordesc) in records.items():
    AutotuneCache.create(meta, module.__file__, triton_heuristics.hash_configs(saved_under)).save(
        winner, 1_000_000, found_by_coordesc=by_coordesc
    )
    configs, _, info = triton_heuristics.check_autotune_cache(list(compiled), module.__file__, meta)
    out[name] = {
        "state": info.get("autotune_cache_state"),
        "configs": [describe(c) for c in configs] if len(configs) == 1 else len(configs),
        "recorded": describe(winner),
        "found_by_coordesc": getattr(configs[0], "found_by_coordesc", False) if len(configs) == 1 else None,
    }
print(json.dumps(out))
