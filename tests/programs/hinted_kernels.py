"""Inductor kernel modules loaded and tuned through Inductor's own code, as a kernel's first
launch tunes it (PyCodeCache, the autotune cache lookup in the kernel decorator,
`CachingAutotuner.autotune_to_one_config`, then, where the kernel asks for it and its config
was not searched for, `coordinate_descent_tuning` with torch's CoordescTuner; each saves its
winner in the kernel's `.best_config`). No GPU here: each benchmark is a deterministic
"measurement" (the config of the largest blocks, then the fewest warps, wins) and a config's
launcher a stand-in.

    python hinted_kernels.py KERNEL.py...

Prints JSON, per kernel: torch's autotune cache state, how many configs Inductor's heuristics
handed the decorator (`made`: before torch drops duplicates), those the kernel is built with
(`offered`), which of them it benchmarked (`autotuned`), how many configs the search benchmarked
(`searched`), and the winner. Never imports atpack (atpack's torch plug-in may run). Uses torch's folders
($TORCHINDUCTOR_CACHE_DIR, or its default).
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


class Compiled:  # what _precompile_config returns: the search compiles each config it tries
    def __init__(self, config: Any) -> None:
        self.config = config

    def make_launcher(self) -> Launcher:
        return Launcher(self.config)


cached_autotune = triton_heuristics.cached_autotune


def counted(size_hints: Any, configs: Any, *args: Any, **kwargs: Any) -> Any:  # how many torch made
    made[kwargs.get("filename") or ""] = len(configs)
    return cached_autotune(size_hints, configs, *args, **kwargs)


triton_heuristics.cached_autotune = counted
CachingAutotuner.bench = bench
CachingAutotuner._precompile_config = lambda self, config: Compiled(config)
CachingAutotuner._ensure_kernel_loaded = lambda self: None
report = []
for path in sys.argv[1:]:
    with open(path) as f:
        module = PyCodeCache.load(f.read())
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    state = kernel.autotune_cache_info.get("autotune_cache_state")
    offered = [values(c) for c in kernel.configs]
    del benchmarked[:]
    kernel.launchers = [Launcher(c) for c in kernel.configs]
    if len(kernel.launchers) > 1:
        kernel.precompile_time_taken_ns = 0
        kernel.autotune_to_one_config()
    autotuned = list(benchmarked)
    searched = not getattr(kernel.launchers[0].config, "found_by_coordesc", False)
    if searched and kernel.inductor_meta.get("coordinate_descent_tuning"):
        kernel.launchers = [kernel.coordinate_descent_tuning(kernel.launchers[0])]
    report.append(
        {
            "state": state,
            "made": made.get(module.__file__, len(offered)),
            "offered": offered,
            "autotuned": autotuned,
            "searched": len(benchmarked) - len(autotuned),
            "winner": values(kernel.launchers[0].config),
        }
    )
print(json.dumps(report))
