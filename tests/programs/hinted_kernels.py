"""Inductor kernel modules loaded and autotuned through Inductor's own code (PyCodeCache, the
autotune cache lookup in the kernel decorator, `CachingAutotuner.autotune_to_one_config` and its
save of the winner into the kernel's `.best_config`); each launch's benchmark is a deterministic
"measurement" (no GPU here): the config of the largest blocks, then the fewest warps, wins.

    python hinted_kernels.py KERNEL.py...

Prints JSON, per kernel: torch's autotune cache state, how many configs torch made, which of
them it benchmarked, and the winner. Never imports atpack (atpack's torch plug-in may run).
Uses torch's folders ($TORCHINDUCTOR_CACHE_DIR, or its default).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime import triton_heuristics  # noqa: E402
from torch._inductor.runtime.triton_heuristics import CachingAutotuner  # noqa: E402

made: dict[str, int] = {}
benchmarked: list[dict[str, Any]] = []


def values(config: Any) -> dict[str, Any]:
    return {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}


def bench(self: Any, launcher: Any, *args: Any, **kwargs: Any) -> float:
    benchmarked.append(values(launcher.config))
    blocks = math.prod(v for v in launcher.config.kwargs.values() if isinstance(v, int) and v > 0)
    return 1.0 / blocks + launcher.config.num_warps * 1e-6


class Launcher:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.cache_hash = None
        self.n_regs = self.n_spills = self.shared = 0


cached_autotune = triton_heuristics.cached_autotune


def counted(size_hints: Any, configs: Any, *args: Any, **kwargs: Any) -> Any:  # how many torch made
    made[kwargs.get("filename") or ""] = len(configs)
    return cached_autotune(size_hints, configs, *args, **kwargs)


triton_heuristics.cached_autotune = counted
CachingAutotuner.bench = bench
report = []
for path in sys.argv[1:]:
    with open(path) as f:
        module = PyCodeCache.load(f.read())
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    state = kernel.autotune_cache_info.get("autotune_cache_state")
    offered = [values(c) for c in kernel.configs]
    del benchmarked[:]
    if len(kernel.configs) > 1:
        kernel.launchers = [Launcher(c) for c in kernel.configs]
        kernel.precompile_time_taken_ns = 0
        kernel.autotune_to_one_config()
    report.append(
        {
            "state": state,
            "made": made.get(module.__file__, len(offered)),
            "offered": offered,
            "benchmarked": list(benchmarked),
            "winner": values(kernel.launchers[0].config) if kernel.launchers else offered[0],
        }
    )
print(json.dumps(report))
