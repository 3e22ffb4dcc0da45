"""Load Inductor kernel modules through Inductor's own code (PyCodeCache, the autotune cache
lookup in the kernel decorator) and report each kernel's autotune cache state as JSON.

    python inductor_kernel.py read KERNEL.py...     report states
    python inductor_kernel.py tune KERNEL.py...     report states, then save a best config
                                                    for each kernel (as autotuning would)
Uses $TORCHINDUCTOR_CACHE_DIR. With $ATPACK_CAPTURE_TO set, everything runs inside
`atpack.capture()` and the capture is saved there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402
from torch._inductor.runtime.triton_heuristics import hash_configs  # noqa: E402

import atpack  # noqa: E402


def visit(path: str, tune: bool) -> dict[str, Any]:
    with open(path) as f:
        module = PyCodeCache.load(f.read())
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    info = dict(kernel.autotune_cache_info)
    if tune:
        chosen = kernel.configs[len(kernel.configs) // 2]
        cache = AutotuneCache.create(kernel.inductor_meta, module.__file__, hash_configs(kernel.configs))
        cache.save(chosen, 42_000_000, found_by_coordesc=True)
        info["saved"] = {**chosen.kwargs, "num_warps": chosen.num_warps, "num_stages": chosen.num_stages}
    info.pop("best_config", None)
    if kernel.autotune_cache_info.get("autotune_cache_state") == "hit":
        best = kernel.configs[0]
        info["best"] = {**best.kwargs, "num_warps": best.num_warps, "num_stages": best.num_stages}
    return info


capture_to = os.environ.get("ATPACK_CAPTURE_TO")
recording = atpack.capture() if capture_to else contextlib.nullcontext()
with recording:
    report = [visit(path, sys.argv[1] == "tune") for path in sys.argv[2:]]
if capture_to:
    atpack.save_cache_artifacts(capture_to, capture=recording)
print(json.dumps(report))
