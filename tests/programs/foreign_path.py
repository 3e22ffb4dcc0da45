"""Inductor's autotune-cache check for a kernel that carries the absolute path it was compiled
at under another cache folder (as a kernel restored from the FX graph cache does), while this
process's folder holds its record (a pack put it there). A stale record waits at the old path.

    python foreign_path.py KERNEL.py OLD_FOLDER [--replay]
Prints JSON: the cache state torch reports and the config it returns.
Uses $TORCHINDUCTOR_CACHE_DIR as this process's folder.
"""

from __future__ import annotations

import json
import os
import sys

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime import triton_heuristics  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402

import atpack.seam  # noqa: E402

with open(sys.argv[1]) as f:
    source = f.read()
here = os.environ["TORCHINDUCTOR_CACHE_DIR"]
os.environ["TORCHINDUCTOR_CACHE_DIR"] = sys.argv[2]  # compiled on "another machine"
module = PyCodeCache.load(source)
kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
configs, meta, compiled_at = list(kernel.configs), kernel.inductor_meta, module.__file__
configs_hash = triton_heuristics.hash_configs(configs)
AutotuneCache.create(meta, compiled_at, configs_hash).save(configs[0], 1_000_000)  # stale, at the old path
os.environ["TORCHINDUCTOR_CACHE_DIR"] = here
relative = os.path.relpath(compiled_at, sys.argv[2])
populated = os.path.join(here, relative)
AutotuneCache.create(meta, populated, configs_hash).save(configs[1], 1_000_000)  # what a pack put here
if "--replay" in sys.argv:
    assert atpack.seam.install_replay()
found, _, info = triton_heuristics.check_autotune_cache(configs, compiled_at, meta)
best = found[0] if len(found) == 1 else None
print(
    json.dumps(
        {
            "state": info.get("autotune_cache_state"),
            "config": None
            if best is None
            else ("old" if best is configs[0] else "here" if best is configs[1] else "?"),
        }
    )
)
