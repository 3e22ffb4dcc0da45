"""A user kernel tuned with `@triton.autotune` and Triton's disk cache."""

import triton
import triton.language as tl

CONFIGS = [
    triton.Config({"BLOCK": block}, num_warps=warps, num_stages=stages)
    for block in (128, 256, 512, 1024)
    for warps in (2, 4)
    for stages in (2, 3)
]


@triton.autotune(configs=CONFIGS, key=["n", "mode"], cache_results=True)
@triton.jit
def scale_add(x_ptr, y_ptr, out_ptr, n, mode, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x * mode + y, mask=mask)
