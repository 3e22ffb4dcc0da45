"""Load Inductor kernel modules through Inductor's own code, as `inductor_kernel.py read` does,
with the candidate list torch makes for them changed, and report each kernel's autotune cache
state as JSON.

    python explain_inductor.py KERNEL.py... [--fewer-configs]

--fewer-configs: Inductor's heuristics hand the kernel one candidate fewer (the last one left
out), as when Inductor rechecks the cache with the configs it compiled: the kernel module, and
so the path of its `.best_config`, stays the same. Uses torch's folders ($TORCHINDUCTOR_CACHE_DIR).
"""

from __future__ import annotations

import json
import sys

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime import triton_heuristics  # noqa: E402

if "--fewer-configs" in sys.argv:
    cached_autotune = triton_heuristics.cached_autotune

    def fewer(size_hints, configs, *args, **kwargs):  # every candidate but the last
        return cached_autotune(size_hints, configs[:-1], *args, **kwargs)

    triton_heuristics.cached_autotune = fewer

report = []
for path in (a for a in sys.argv[1:] if not a.startswith("--")):
    with open(path) as f:
        module = PyCodeCache.load(f.read())
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    report.append(dict(kernel.autotune_cache_info, module=module.__file__))
print(json.dumps(report, default=str))
