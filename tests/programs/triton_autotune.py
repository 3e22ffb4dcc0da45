"""Run a user `@triton.autotune` kernel (16 configs, 2 tuning keys) through Triton's own
autotuner and disk cache (`check_disk_cache`), with the benchmark and the launch stubbed.
Prints JSON: benchmark calls made, cache hits reported (by Triton's autotune listener, 3.8+, else
by its disk cache lookup), the chosen configs. Uses $TRITON_CACHE_DIR.

    python triton_autotune.py [--triton-key KEY]    KEY: as another build of Triton would key its results
"""

from __future__ import annotations

import json
import sys

import standin

standin.install()

import torch  # noqa: E402
import triton  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402
from user_kernel import autotune_hits, scale_add  # noqa: E402

bench_calls = []


def fake_bench(self, *args, config, **kwargs):  # a deterministic "measurement"
    bench_calls.append(str(config))
    return [1.0 / config.kwargs["BLOCK"] + config.num_warps * 1e-4 + config.num_stages * 1e-5] * 3


Autotuner._bench = fake_bench
if "--triton-key" in sys.argv:  # another build of this Triton release
    import triton.compiler.compiler
    import triton.runtime.autotuner

    other = sys.argv[sys.argv.index("--triton-key") + 1]
    triton.runtime.autotuner.triton_key = lambda: other  # 3.5+ imports it at the top
    triton.compiler.compiler.triton_key = lambda: other  # 3.4 imports it from here when it looks
scale_add.fn.run = lambda *args, **kwargs: None  # no GPU: no launch
hits: list[bool] = []
autotune_hits(hits)
x = torch.zeros(16)
for n in (65536, 4194304):
    scale_add[(1,)](x, x, x, n, 3)
print(
    json.dumps(
        {"bench_calls": len(bench_calls), "cache_hits": hits, "best": sorted(str(c) for c in scale_add.cache.values())}
    )
)
