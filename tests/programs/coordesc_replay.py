"""Inductor's tuning entry points on a kernel whose `.best_config` records a coordinate-descent
result, with the mark lost on the way (as torch 2.8-2.13 lose it): does the process search again?

    python coordesc_replay.py KERNEL.py [--replay] [--torch-version V] [--unknown-internal]
Prints JSON: how many searches and benchmarks ran, and what each entry point returned.
With --replay, the program installs atpack's replay itself (atpack.seam.install_replay, the API
path); without it, the program never imports atpack, and only atpack's torch plug-in can.
--torch-version makes torch report another version before Inductor is imported;
--unknown-internal changes an internal atpack reads (the autotune cache's file record).
Uses torch's folders ($TORCHINDUCTOR_CACHE_DIR, or its default).
"""

from __future__ import annotations

import json
import sys

if "--torch-version" in sys.argv:
    import torch

    torch.__version__ = sys.argv[sys.argv.index("--torch-version") + 1]

import standin

standin.install()

from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402
from torch._inductor.runtime.coordinate_descent_tuner import CoordescTuner  # noqa: E402
from torch._inductor.runtime.triton_heuristics import CachingAutotuner, hash_configs  # noqa: E402
from triton import Config  # noqa: E402

with open(sys.argv[1]) as f:
    source = f.read()
module = PyCodeCache.load(source)
kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
winner = kernel.configs[len(kernel.configs) // 2]
AutotuneCache.create(kernel.inductor_meta, module.__file__, hash_configs(kernel.configs)).save(
    winner, 42_000_000, found_by_coordesc=True
)
if "--replay" in sys.argv:
    import atpack.seam

    assert atpack.seam.install_replay()
if "--unknown-internal" in sys.argv:  # as if torch changed how an autotune cache names its file
    original_create = AutotuneCache.create

    def create(*args: object, **kwargs: object) -> object:
        cache = original_create(*args, **kwargs)
        cache.local_cache = {"layout": "one atpack does not know"}
        return cache

    AutotuneCache.create = staticmethod(create)  # type: ignore[method-assign,assignment]

searches, benchmarks = [], []
# the search itself (torch 2.8 to 2.13: CoordescTuner.autotune, from the launcher's config), which
# finds nothing better
CoordescTuner.autotune = lambda self, benchmark, config, *a, **k: searches.append(1) or config
CachingAutotuner.benchmark_all_configs = lambda self, *a, **k: (
    benchmarks.append(1) or {launcher: float(i) for i, launcher in enumerate(self.launchers)}
)


class Launcher:
    """A launcher whose config lost the found_by_coordesc mark (a fresh triton.Config)."""

    def __init__(self, config: Config) -> None:
        self.config = Config(dict(config.kwargs), num_warps=config.num_warps, num_stages=config.num_stages)
        self.cache_hash = None
        self.n_regs = self.n_spills = self.shared = 0


unmarked = Launcher


launcher = unmarked(winner)
returned = kernel.coordinate_descent_tuning(launcher)
candidates = [unmarked(c) for c in kernel.configs]
kernel.launchers = list(candidates)
kernel.save_cache_hook = None
kernel.autotune_to_one_config()
print(
    json.dumps(
        {
            "searches": len(searches),
            "benchmarks": len(benchmarks),
            "coordesc_returned_same": returned is launcher,
            "marked": getattr(launcher.config, "found_by_coordesc", False),
            "autotune_chose_recorded": kernel.launchers == [candidates[len(kernel.configs) // 2]],
            "atpack_modules": sorted(m for m in sys.modules if m.split(".")[0] == "atpack"),
            "patched": sys.modules["atpack.seam"].patched() if "atpack.seam" in sys.modules else [],
        }
    )
)
