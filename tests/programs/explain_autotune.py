"""Run a user `@triton.autotune` kernel through Triton's own autotuner and disk cache
(`check_disk_cache`), as triton_autotune.py does, with the kernel, its configs and its tuning
key chosen by flags; the launch is stubbed and each benchmark is a deterministic "measurement".
Prints JSON: benchmark calls made, cache hits reported (Triton's autotune listener, 3.8+, else
its disk cache lookup), the chosen configs. Uses $TRITON_CACHE_DIR.

    python explain_autotune.py [--fewer-configs] [--edited] [--n N...]

--fewer-configs: the kernel tunes over the first half of its configs only.
--edited: the kernel's source is edited (the same name, another body).
--n: the values of the tuning key `n`, one launch each (default: 65536 4194304).

Imports torch (so that atpack's torch plug-in runs, as in any process of a user's) and never
atpack: recording and capturing are the plug-in's (ATPACK_EXPLAIN, `atpack capture --`). The
program's autotune listener calls the one there before it (atpack's).
"""

from __future__ import annotations

import argparse
import json

import standin

standin.install()

import torch  # noqa: E402  (atpack's torch plug-in runs at its import)
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
import user_kernel  # noqa: E402
from user_kernel import CONFIGS  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--fewer-configs", action="store_true")
parser.add_argument("--edited", action="store_true")
parser.add_argument("--n", type=int, nargs="+", default=[65536, 4194304])
args = parser.parse_args()

configs = CONFIGS[: len(CONFIGS) // 2] if args.fewer_configs else CONFIGS
launched: list[dict[str, int]] = []
bench_calls = []


def do_bench(kernel_call, quantiles=None):  # a deterministic "measurement" of the config just launched
    kernel_call()
    config = launched[-1]
    bench_calls.append(config)
    return [1.0 / config["BLOCK"] + config["num_warps"] * 1e-4 + config["num_stages"] * 1e-5] * 3


@triton.jit
def scale_add(x_ptr, y_ptr, out_ptr, n, mode, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x * mode - y, mask=mask)  # user_kernel's, edited: - y


kernel = scale_add if args.edited else user_kernel.scale_add.fn  # one name, two bodies
tuned = triton.autotune(configs=configs, key=["n", "mode"], cache_results=True, do_bench=do_bench)(kernel)
tuned.fn.run = lambda *args, **kwargs: launched.append(kwargs)  # no GPU: no launch
hits: list[bool] = []
user_kernel.autotune_hits(hits)
x = torch.zeros(16)
for n in args.n:
    tuned[(1,)](x, x, x, n, 3)
print(
    json.dumps(
        {"bench_calls": len(bench_calls), "cache_hits": hits, "best": sorted(str(c) for c in tuned.cache.values())}
    )
)
